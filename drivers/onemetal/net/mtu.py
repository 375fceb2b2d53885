"""MTU: the overlay gets the underlay's MTU minus VXLAN's 50 bytes, never more.

50 = outer IPv4 (20) + UDP (8) + VXLAN (8) + the inner Ethernet header (14). A guest
with a larger MTU sends frames the underlay silently drops once encapsulated
(no ICMP "fragmentation needed" comes back): a black hole, not an error.

>>> overlay_mtu(1500), overlay_mtu(9001)
(1450, 8951)
"""

from __future__ import annotations


from onemetal.errors import ConfigError, InputError
from onemetal.net.ipjson import addr_show

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: vnet_create runs no command and reads no NIC
    from onemetal.net.peers import Mesh
    from onemetal.opennebula.vm import Nic
    from onemetal.run import Runner

VXLAN_OVERHEAD = 50
MIN_MTU = 68


def overlay_mtu(underlay: int) -> int:
    return underlay - VXLAN_OVERHEAD


def nic_mtu(nic: Nic, maximum: int, field: str) -> int:
    """The MTU a NIC gets: the vnet's MTU when set (never above the maximum), else the maximum."""
    for name, value in (("MTU", nic.mtu), ("GUEST_MTU", nic.guest_mtu)):
        if value is not None and value > maximum:
            raise InputError(f"{value} is above the overlay maximum {maximum} (underlay MTU "
                             f"{maximum + VXLAN_OVERHEAD} - {VXLAN_OVERHEAD} for VXLAN)",
                             f"{field}/{name}")
    return nic.mtu if nic.mtu is not None else maximum


def _interfaces(runner: Runner) -> list[dict[str, object]]:
    return addr_show(runner) or []


def learn_underlay_mtu(runner: Runner, local_ip: str) -> int:
    """The MTU of the interface holding the tunnel address (`ip -j addr show`, no sudo)."""
    for iface in _interfaces(runner):
        addresses = iface.get("addr_info") or []
        if any(a.get("local") == local_ip for a in addresses):  # type: ignore[union-attr]
            mtu = int(iface["mtu"])  # type: ignore[call-overload]
            if mtu < MIN_MTU + VXLAN_OVERHEAD:
                raise InputError(f"{iface.get('ifname')} holds {local_ip} with MTU {mtu}, which "
                                 f"leaves no room for VXLAN", "TUNNEL_IP")
            return mtu
    raise InputError(f"no interface holds this host's tunnel address {local_ip}", "TUNNEL_IP")


def underlay_mtu(runner: Runner, configured: int, local_ip: str | None,
                 recorded: int | None = None) -> int:
    """The configured underlay MTU, else the one the last mesh sync recorded, else learned now.

    Learning costs a command, so mesh sync does it and actions read the record; only a
    peer list recorded before the MTU was (an upgraded host, until its next sync) learns."""
    if configured:
        if configured < MIN_MTU + VXLAN_OVERHEAD:
            raise ConfigError(f"{configured} leaves no room for VXLAN", "net.underlay_mtu")
        return configured
    if local_ip is None:
        raise InputError("this host has no tunnel address yet: run `onemetal mesh sync` on the "
                         "frontend, or set net.underlay_mtu in onemetal.conf", "mesh")
    return recorded or learn_underlay_mtu(runner, local_ip)


def mesh_overlay_mtu(mesh: Mesh, reader: Runner, configured: int) -> int:
    """The overlay's MTU from what the peer list recorded: no command (docs/net.md)."""
    local_ip = mesh.local.tunnel_ip if mesh.local else None
    return overlay_mtu(underlay_mtu(reader, configured, local_ip, mesh.underlay_mtu))
