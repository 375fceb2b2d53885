"""Which device a NIC's port is, and whether this VM may touch it: TARGET is tenant input.

oned keeps a TARGET the VM owner writes (it only fills in one-<vmid>-<nicid> when it is
empty, and NIC/TARGET is not a restricted attribute), so a TARGET could name another VM's
port, a tunnel, the uplink or another bridge's port. A NIC's port is therefore either
  - its canonical name one-<vmid>-<nicid> (only this VM and NIC can be given it), or
  - a tap or veth device, not named like onemetal's own ports, that holds no address and no
    master but ovs-system, and that, if on the bridge, is untagged and carries this NIC's MAC
    (libvirt's attached-mac) or is tagged as this very VM and NIC by onemetal.
Anything else fails the action naming NIC[NIC_ID=n]/TARGET, before any change. Names are
checked before the host lock; devices and OVSDB under it, on what the action is adding.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Mapping

from onemetal.errors import InputError
from onemetal.net.ipjson import addr_show
from onemetal.net.ovsdb import BridgeState, Interface
from onemetal.reconcile import OWNER
from onemetal.record import value
from onemetal.run import Runner

K_OWNER, K_ROLE = f"{OWNER}-owner", f"{OWNER}-role"
K_VM, K_NIC = f"{OWNER}-vm", f"{OWNER}-nic"
CANONICAL = re.compile(r"one-([0-9]+)-([0-9]+)\Z")
SYS_NET = "/sys/class/net"
# Names onemetal gives its own ports (NAT gateway ports, mesh tunnels): a TARGET taking one would
# be adopted by name by nat-apply or mesh sync, which then address or re-type the tenant's device.
RESERVED = ("onegw", "vx")
OVS_MASTER = "ovs-system"  # the master of every port of a kernel-datapath OVS bridge
ROLES = ("tunnel", "internal", "vm")


def canonical_port(vm_id: int, nic_id: int) -> str:
    """The port name oned gives a NIC when TARGET is empty."""
    return f"one-{vm_id}-{nic_id}"


@value
class Claim:
    """A VM's NIC asking for a port by name."""
    vm_id: int
    nic_id: int
    mac: str

    @property
    def field(self) -> str:
        return f"NIC[NIC_ID={self.nic_id}]/TARGET"

    @property
    def canonical(self) -> str:
        return canonical_port(self.vm_id, self.nic_id)

    def owns(self, iface: Interface) -> bool:
        """The port's external_ids say it is this VM's NIC (never a gateway's internal port)."""
        ids = iface.external_ids
        return (ids.get(K_OWNER) == OWNER and ids.get(K_ROLE) == "vm" and iface.type != "internal"
                and ids.get(K_VM) == str(self.vm_id) and ids.get(K_NIC) == str(self.nic_id))


def claim_all(pairs: Iterable[tuple[str, Claim]]) -> dict[str, Claim]:
    """The claims by port name; two NICs naming one port is refused."""
    out: dict[str, Claim] = {}
    for name, claim in pairs:
        if name in out:
            raise InputError(f"{name} is also the TARGET of NIC {out[name].nic_id}", claim.field)
        out[name] = claim
    return out


def check_names(claims: Mapping[str, Claim], bridge: str) -> None:
    """Pure: no other VM's or NIC's canonical name, not the bridge, none of onemetal's names."""
    for name, claim in claims.items():
        if name != claim.canonical and name.startswith(RESERVED):
            raise InputError(f"{name} is reserved: onemetal names its own ports "
                             f"{', '.join(p + '*' for p in RESERVED)}", claim.field)
        match = CANONICAL.match(name)
        if match and name != claim.canonical:
            raise InputError(f"{name} is the port of VM {match[1]} NIC {match[2]}, not of this "
                             f"NIC ({claim.canonical})", claim.field)
        if name == bridge:
            raise InputError(f"{name} is the bridge itself", claim.field)


def _link(reader: Runner, name: str) -> dict[str, object] | None:
    try:
        rows = addr_show(reader, "-d", device=name)  # None: gone meanwhile, nothing is touched
    except ValueError:
        return None
    return rows[0] if rows and isinstance(rows[0], dict) else None


def check_device(name: str, claim: Claim, reader: Runner) -> str | None:
    """A TARGET of the tenant's choice must be a VM's device: a tap or a veth, enslaved to no
    kernel bridge and holding no IPv4 or global IPv6 address. Run under the lock on each name
    about to be added. None: no such device (nothing to add); else its master, "" for none;
    OVS_MASTER (libvirt plugged it into a kernel-datapath bridge) is for datapath_port_ok."""
    if not os.path.exists(os.path.join(SYS_NET, name)):
        return None
    if name == claim.canonical:
        return ""
    link = _link(reader, name)
    if link is None:
        return None
    kind = (link.get("linkinfo") or {}).get("info_kind")  # type: ignore[union-attr]
    tap = os.path.exists(os.path.join(SYS_NET, name, "tun_flags"))
    veth = kind == "veth" and not os.path.exists(os.path.join(SYS_NET, name, "device"))
    if not (tap or veth):
        raise InputError(f"{name} is not a VM's tap or veth device (link kind {kind or 'none'})",
                         claim.field)
    master = str(link.get("master") or "")
    if master and master != OVS_MASTER:
        raise InputError(f"{name} is a port of {master}", claim.field)
    held = [a.get("local") for a in link.get("addr_info") or []  # type: ignore[union-attr]
            if a.get("family") == "inet" or a.get("scope") == "global"]
    if held:
        raise InputError(f"{name} holds the host's address {held[0]}", claim.field)
    return master


def _describe(iface: Interface) -> str:
    ids = iface.external_ids
    if ids.get(K_OWNER) != OWNER:
        return "a port onemetal did not create"
    if ids.get(K_ROLE) == "tunnel":
        return f"the mesh tunnel to {ids.get(f'{OWNER}-peer', '?')}"
    if iface.type == "internal":
        return "an internal port of the host (a vnet gateway)"
    return f"the port of VM {ids.get(K_VM, '?')} NIC {ids.get(K_NIC, '?')}"


def _this_nics(iface: Interface, name: str, claim: Claim) -> bool:
    """Tagged as this NIC by onemetal, or plugged for it by libvirt: untagged, with the NIC's
    MAC in attached-mac (or its own canonical name)."""
    ids = iface.external_ids
    return claim.owns(iface) or (ids.get(K_OWNER) is None and (
        name == claim.canonical or ids.get("attached-mac", "").lower() == claim.mac))


def datapath_port_ok(state: BridgeState, name: str, claim: Claim) -> bool:
    """A device whose master is ovs-system may be the NIC's only as a port of our bridge that is
    this NIC's: any other OVS bridge shares that master."""
    iface = state.interfaces.get(name)
    return iface is not None and _this_nics(iface, name, claim)


def check_ports(state: BridgeState, claims: Mapping[str, Claim],
                on_datapath: frozenset[str] = frozenset()) -> None:
    """Against OVSDB as read under the lock: every claimed port is free or already this NIC's;
    those in `on_datapath` (enslaved to ovs-system) must be this NIC's port on the bridge."""
    for name, claim in claims.items():
        if name in state.elsewhere:
            raise InputError(f"{name} is a port of bridge {state.elsewhere[name]}", claim.field)
        iface = state.interfaces.get(name)
        if iface is None and name in on_datapath:
            raise InputError(f"{name} is a port of {OVS_MASTER} on no bridge of this host's "
                             "OVSDB", claim.field)
        if iface is None or _this_nics(iface, name, claim):
            continue
        raise InputError(f"{name} is {_describe(iface)} on {state.name}", claim.field)


def role(iface: Interface) -> str | None:
    """What onemetal made a port: one of ROLES; None for a port it did not tag."""
    ids = iface.external_ids
    if ids.get(K_OWNER) != OWNER:
        return None
    return "internal" if iface.type == "internal" else ids.get(K_ROLE, "vm")


def check_roles(state: BridgeState, wanted: Mapping[str, str]) -> None:
    """A port is never turned into another kind (a VM's tap into a gateway port or a tunnel,
    or back): a name two parts want is an error to fix, not a port to take over. Only a VM
    port may be an untagged one (libvirt plugs it before onemetal tags it)."""
    for name, kind in sorted(wanted.items()):
        iface = state.interfaces.get(name)
        have = role(iface) if iface is not None else kind
        if have != kind and not (have is None and kind == "vm"):
            raise InputError(f"{name} exists on {state.name} as "
                             f"{'a port onemetal did not create' if have is None else have}; "
                             f"onemetal does not make it a {kind} port", f"ports@{state.name}")


def owned_by(state: BridgeState, claims: Mapping[str, Claim]) -> Iterable[str]:
    """The claimed ports OVSDB says are the claimant's: all that clean may remove."""
    return (n for n, c in claims.items()
            if (i := state.interfaces.get(n)) is not None and c.owns(i))
