"""What a VM must not reach through the gateway although it is "outside" every NATed vnet.

The gateway SNATs a vnet to one of its own addresses, so whatever trusts that address
would trust every VM: the other hosts' underlay addresses (their sshd, and their
VXLAN ports, whose tunnel to the gateway accepts any frame from its address, with any
VNI), the provider's link-local services (169.254.169.254: the gateway's instance
metadata and credentials) and the provider's private ranges (the frontend, the NFS
mount target). The forward chain drops new connections from the gateway ports to:
  hosts    every mesh host's tunnel address, this one's included (from the peer list
           on the gateway: nat-apply runs there);
  blocked  169.254.0.0/16 and nat.blocked_networks (an interval set);
  UDP to net.vxlan_port, whatever the address;
except `allowed` (nat.allowed, ADDRESS:PORT/PROTO, e.g. the VPC's resolver), which
passes before `blocked` but never to a host or the VXLAN port. Sets, so a packet costs
the same whatever their sizes (pure).
"""

from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from onemetal.errors import InputError
from onemetal.nat.model import endpoint, ipv4, port, protocol, subnet
from onemetal.record import value

LINK_LOCAL = "169.254.0.0/16"


@value
class Fence:
    hosts: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset({LINK_LOCAL})
    allowed: frozenset[tuple[str, str, int]] = frozenset()
    vxlan_port: int = 4789


def blocked_networks(items: Sequence[object], field: str) -> frozenset[str]:
    """The CIDRs given, checked, with 169.254.0.0/16, merged where they touch or overlap
    (an interval set refuses overlapping elements)."""
    if not isinstance(items, (list, tuple)):
        raise InputError(f"{items!r} is not a list of IPv4 networks", field)
    networks = [ipaddress.IPv4Network(LINK_LOCAL)]
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InputError(f"{item!r} is not an IPv4 network like 10.0.0.0/16", f"{field}[{i}]")
        networks.append(subnet(item, f"{field}[{i}]"))
    return frozenset(str(n) for n in ipaddress.collapse_addresses(networks))


def allowed(items: Sequence[object], field: str) -> frozenset[tuple[str, str, int]]:
    """ADDRESS:PORT/PROTO entries, as the set's (address, protocol, port) elements."""
    if not isinstance(items, (list, tuple)):
        raise InputError(f"{items!r} is not a list of ADDRESS:PORT/PROTO", field)
    out = set()
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, str):
            raise InputError(f"{item!r} is not ADDRESS:PORT/PROTO like 10.0.0.2:53/udp", where)
        address, number, proto = endpoint(item, where)
        out.add((ipv4(address, where), protocol(proto, where), port(number, where)))
    return frozenset(out)
