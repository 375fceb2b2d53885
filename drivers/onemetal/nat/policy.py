"""Who may get an Elastic IP through the VM hooks, and how many: onemetal.conf [nat].

A VM's EIP attribute is tenant input: any owner can write it into a template they
instantiate. So the hooks map a VM only when its group (the VM's GID or GNAME, as
oned records it) is in `eip_groups`, and only while the owner's user and group are
below `eip_quota_user` / `eip_quota_group` (counted by the store, in the map's own
transaction). `"*"` in eip_groups admits any group: only for clouds whose oned.conf
has VM_RESTRICTED_ATTR = "EIP", where only oneadmin's group can set the attribute.
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


def groups(cfg: NatConfig) -> tuple[int | str, ...]:
    """eip_groups, checked: group ids (int), group names, or "*"."""
    out: list[int | str] = []
    for index, item in enumerate(cfg.eip_groups):
        field = f"nat.eip_groups[{index}]"
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ConfigError("must be a group id or a group name", field)
        if isinstance(item, int):
            if item < 0:
                raise ConfigError(f"{item} is not a group id", field)
        elif item != ANY_GROUP:
            try:
                values.name(item, field)
            except InputError as exc:
                raise ConfigError(str(exc)) from None
        out.append(item)
    return tuple(out)


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
