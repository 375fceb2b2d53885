"""Who may get an Elastic IP through the VM hooks, and how many: onemetal.conf [nat].

A VM's EIP attribute is tenant input: any owner can write it into a template they
instantiate. So the hooks map a VM only when its group (the VM's GID or GNAME, as
oned records it) is in `eip_groups`, and only while the owner's user and group are
below `eip_quota_user` / `eip_quota_group` (counted by the store, in the map's own
transaction). `"*"` in eip_groups admits any group: only for clouds whose oned.conf
has VM_RESTRICTED_ATTR = "EIP", where only oneadmin's group can set the attribute.
`eip_group_pools` limits the pools each group's EIPs come from, both for EIP=yes and
for an address asked by name (a released address of another group's pool, still in
its DNS, is not for the taking); the store checks it in the map's transaction.
`onenat map` is the administrator's and bypasses both (docs/nat.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onemetal.config import NatConfig
from onemetal.errors import ConfigError, InputError
from onemetal.nat.model import Owner, Quota
from onemetal.opennebula import values

if TYPE_CHECKING:
    from lxml import etree

ANY_GROUP = "*"
REQUEST = "EIP"


def owner_of(root: "etree._Element", vm_id: int) -> tuple[Owner, str]:
    """(UID, GID) and GNAME of a <VM> document; oned always sends them, so none missing."""
    found = {}
    for key in ("UID", "GID", "GNAME"):
        text = (root.findtext(key) or "").strip()
        if not text:
            raise InputError("is missing: the VM's owner decides whether it may get an EIP",
                             f"VM[ID={vm_id}]/{key}")
        found[key] = text
    return (Owner(values.integer(found["UID"], f"VM[ID={vm_id}]/UID"),
                  values.integer(found["GID"], f"VM[ID={vm_id}]/GID")),
            values.name(found["GNAME"], f"VM[ID={vm_id}]/GNAME"))


def _checked_name(item: str, field: str) -> str:
    try:
        return values.name(item, field)
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def _group(item: object, field: str) -> int | str:
    """A group id (int), a group name, or "*"."""
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise ConfigError("must be a group id or a group name", field)
    if isinstance(item, int):
        if item < 0:
            raise ConfigError(f"{item} is not a group id", field)
    elif item != ANY_GROUP:
        _checked_name(item, field)
    return item


def groups(cfg: NatConfig) -> tuple[int | str, ...]:
    """eip_groups, checked: group ids (int), group names, or "*"."""
    return tuple(_group(item, f"nat.eip_groups[{index}]")
                 for index, item in enumerate(cfg.eip_groups))


def group_pools(cfg: NatConfig) -> dict[int | str, tuple[str, ...]]:
    """eip_group_pools, checked: "GROUP=POOL[,POOL...]" (GROUP an id, a name or "*") by group."""
    out: dict[int | str, tuple[str, ...]] = {}
    for index, item in enumerate(cfg.eip_group_pools):
        field = f"nat.eip_group_pools[{index}]"
        if not isinstance(item, str) or item.count("=") != 1:
            raise ConfigError(f"{item!r}: give \"GROUP=POOL[,POOL...]\"", field)
        key, _, listed = item.partition("=")
        group = _group(int(key) if key.isdigit() else key, field)
        if group in out:
            raise ConfigError(f"group {group} is listed twice", field)
        out[group] = tuple(_checked_name(p.strip(), field) for p in listed.split(","))
    return out


def pools(cfg: NatConfig, vm_id: int, owner: Owner, gname: str) -> tuple[str, ...] | None:
    """The pools the hooks may take this VM's EIP from (None: any, eip_group_pools being empty).
    A group's own entries (by id and by name) replace the "*" entry; a group in neither gets none,
    so a pool added for one group is not open to the others."""
    table = group_pools(cfg)
    if not table:
        return None
    own = [p for key in (owner.gid, gname) for p in table.get(key, ())]
    allowed = tuple(dict.fromkeys(own)) or table.get(ANY_GROUP, ())
    if not allowed:
        raise InputError(f"group {owner.gid} ({gname}) may take Elastic IPs from no pool: "
                         "nat.eip_group_pools in onemetal.conf lists neither it nor \"*\"",
                         f"VM[ID={vm_id}]/USER_TEMPLATE/{REQUEST}")
    return allowed


def authorize(cfg: NatConfig, vm_id: int, owner: Owner, gname: str) -> None:
    """Refuse, naming the policy, a VM whose group may not get an EIP through the hooks."""
    allowed = groups(cfg)
    if ANY_GROUP in allowed or owner.gid in allowed or gname in allowed:
        return
    listed = ", ".join(map(str, allowed)) or "none: only `onenat map` by an administrator"
    raise InputError(f"group {owner.gid} ({gname}) may not get an Elastic IP: "
                     f"nat.eip_groups in onemetal.conf allows {listed}",
                     f"VM[ID={vm_id}]/USER_TEMPLATE/{REQUEST}")


def quota(cfg: NatConfig) -> Quota:
    for key in ("eip_quota_user", "eip_quota_group"):
        if getattr(cfg, key) < Quota.UNLIMITED:
            raise ConfigError(f"{getattr(cfg, key)}: give a count, or {Quota.UNLIMITED} for no "
                              "limit", f"nat.{key}")
    return Quota(user=cfg.eip_quota_user, group=cfg.eip_quota_group)
