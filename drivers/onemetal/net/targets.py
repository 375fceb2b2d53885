"""Which device a NIC's port is, and whether this VM may touch it: TARGET is tenant input.

oned keeps a TARGET the VM owner writes (it only fills in one-<vmid>-<nicid> when it is
empty, and NIC/TARGET is not a restricted attribute), so a TARGET could name another VM's
port, a tunnel, the uplink or another bridge's port. A NIC's port is therefore either
  - its canonical name one-<vmid>-<nicid> (only this VM and NIC can be given it), or
  - a tap or veth device that holds no address and no master, and that, if already on the
    bridge, is untagged and carries this NIC's MAC (libvirt's attached-mac) or is tagged as
    this very VM and NIC by onemetal.
Anything else fails the action naming NIC[NIC_ID=n]/TARGET, before any change. The checks
on the device run before the host lock; those on OVSDB on the state read inside it.
"""

from __future__ import annotations

import json
import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Mapping

from onemetal.errors import InputError
from onemetal.net.ovsdb import BridgeState, Interface
from onemetal.reconcile import OWNER
from onemetal.record import value
from onemetal.run import Runner

K_OWNER, K_ROLE = f"{OWNER}-owner", f"{OWNER}-role"
K_VM, K_NIC = f"{OWNER}-vm", f"{OWNER}-nic"
CANONICAL = re.compile(r"one-([0-9]+)-([0-9]+)\Z")
SYS_NET = "/sys/class/net"


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
        return f"one-{self.vm_id}-{self.nic_id}"

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
    """Pure: no other VM's or NIC's canonical name, not the bridge."""
    for name, claim in claims.items():
        match = CANONICAL.match(name)
        if match and name != claim.canonical:
            raise InputError(f"{name} is the port of VM {match[1]} NIC {match[2]}, not of this "
                             f"NIC ({claim.canonical})", claim.field)
        if name == bridge:
            raise InputError(f"{name} is the bridge itself", claim.field)


def _link(reader: Runner, name: str) -> dict[str, object] | None:
    out = reader.run(["ip", "-j", "-d", "addr", "show", "dev", name], check=False)
    if out.returncode != 0:
        return None  # gone meanwhile: nothing of it is touched
    try:
        rows = json.loads(out.stdout or "[]")
    except ValueError:
        return None
    return rows[0] if rows and isinstance(rows[0], dict) else None


def check_device(name: str, claim: Claim, reader: Runner) -> None:
    """A TARGET of the tenant's choice must be a VM's device: a tap or a veth, enslaved to no
    bridge (kernel bridge or OVS datapath) and holding no IPv4 or global IPv6 address."""
    if name == claim.canonical or not os.path.exists(os.path.join(SYS_NET, name)):
        return
    link = _link(reader, name)
    if link is None:
        return
    kind = (link.get("linkinfo") or {}).get("info_kind")  # type: ignore[union-attr]
    tap = os.path.exists(os.path.join(SYS_NET, name, "tun_flags"))
    veth = kind == "veth" and not os.path.exists(os.path.join(SYS_NET, name, "device"))
    if not (tap or veth):
        raise InputError(f"{name} is not a VM's tap or veth device (link kind {kind or 'none'})",
                         claim.field)
    if link.get("master"):
        raise InputError(f"{name} is a port of {link['master']}", claim.field)
    held = [a.get("local") for a in link.get("addr_info") or []  # type: ignore[union-attr]
            if a.get("family") == "inet" or a.get("scope") == "global"]
    if held:
        raise InputError(f"{name} holds the host's address {held[0]}", claim.field)


def _describe(iface: Interface) -> str:
    ids = iface.external_ids
    if ids.get(K_OWNER) != OWNER:
        return "a port onemetal did not create"
    if ids.get(K_ROLE) == "tunnel":
        return f"the mesh tunnel to {ids.get(f'{OWNER}-peer', '?')}"
    if iface.type == "internal":
        return "an internal port of the host (a vnet gateway)"
    return f"the port of VM {ids.get(K_VM, '?')} NIC {ids.get(K_NIC, '?')}"


def check_ports(state: BridgeState, claims: Mapping[str, Claim]) -> None:
    """Against OVSDB as read under the lock: every claimed port is free or already this NIC's."""
    for name, claim in claims.items():
        if name in state.elsewhere:
            raise InputError(f"{name} is a port of bridge {state.elsewhere[name]}", claim.field)
        iface = state.interfaces.get(name)
        if iface is None or claim.owns(iface):
            continue
        ids = iface.external_ids
        # libvirt plugged the tap for this NIC: untagged, with the NIC's MAC (or its own name).
        if ids.get(K_OWNER) is None and (name == claim.canonical
                                         or ids.get("attached-mac", "").lower() == claim.mac):
            continue
        raise InputError(f"{name} is {_describe(iface)} on {state.name}", claim.field)


def owned_by(state: BridgeState, claims: Mapping[str, Claim]) -> Iterable[str]:
    """The claimed ports OVSDB says are the claimant's: all that clean may remove."""
    return (n for n, c in claims.items()
            if (i := state.interfaces.get(n)) is not None and c.owns(i))
