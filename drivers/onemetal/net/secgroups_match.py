"""One security group rule as pieces of OpenFlow matches, and the flows they cost (pure).

A rule splits into parts, one per IP family and protocol it covers. A part allows a
packet that matches its base (protocol, ICMP type), one of its port masks and one
of its networks. Written as plain flows that is ports x networks flows; as an OVS
conjunctive match (`conjunction(id, 1/2)` per port, `conjunction(id, 2/2)` per
network, one `conj_id` flow) it is ports + networks + 1. A part takes whichever
is fewer, and its cost is known from counts alone, before any match text exists.

>>> port_masks(80, 90)
((80, 65528), (88, 65534), (90, 65535))
>>> merge_ranges(((80, 80), (81, 90), (22, 22), (85, 100)))
((22, 22), (80, 100))
"""

from __future__ import annotations

import ipaddress
from functools import cached_property

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from onemetal.errors import InputError
from onemetal.opennebula.vm import SecurityGroupRule
from onemetal.record import value

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# ESP and AH, as OpenNebula's own drivers translate IPSEC.
_IPSEC = (50, 51)
# The remote end of a connection: its source address inbound, its destination outbound.
_REMOTE = {("inbound", 4): "nw_src", ("outbound", 4): "nw_dst",
           ("inbound", 6): "ipv6_src", ("outbound", 6): "ipv6_dst"}


def port_masks(lo: int, hi: int) -> tuple[tuple[int, int], ...]:
    """The fewest value/mask pairs that cover the ports lo..hi exactly."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return tuple(out)


def merge_ranges(ranges: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Overlapping and adjacent ranges joined: a repeated or nested port costs no flow."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(set(ranges)):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


@value
class Part:
    """One family and protocol of a rule: base, and one of ports (none: any), and one of
    networks (none: any address)."""
    base: str
    remote: str
    ranges: tuple[tuple[int, int], ...]
    networks: tuple[Network, ...]

    @cached_property
    def counts(self) -> tuple[int, int]:
        """(port masks, networks), each at least 1: an absent dimension matches everything."""
        ports = sum(len(port_masks(lo, hi)) for lo, hi in self.ranges)
        return max(1, ports), max(1, len(self.networks))

    @property
    def conjunctive(self) -> bool:
        ports, nets = self.counts
        return ports * nets > ports + nets + 1

    @property
    def flows(self) -> int:
        ports, nets = self.counts
        return min(ports * nets, ports + nets + 1)

    def port_matches(self) -> list[str]:
        if not self.ranges:
            return [""]
        return [f"tp_dst={value}" if mask == 0xFFFF else f"tp_dst={value:#x}/{mask:#x}"
                for lo, hi in self.ranges for value, mask in port_masks(lo, hi)]

    def network_matches(self) -> list[str]:
        return [f"{self.remote}={n}" for n in self.networks] or [""]

    def matches(self) -> list[str]:
        """The part as plain flows: every network with every port."""
        return [join(self.base, net, port) for net in self.network_matches()
                for port in self.port_matches()]

    def clauses(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The part as the two dimensions of a conjunctive match."""
        return (tuple(join(self.base, p) for p in self.port_matches()),
                tuple(join(self.base, n) for n in self.network_matches()))


def join(*pieces: str) -> str:
    return ",".join(p for p in pieces if p)


def networks(rule: SecurityGroupRule, field: str) -> tuple[Network, ...] | None:
    """The rule's address range as networks; None when it has none (any address)."""
    if rule.ip is None:
        return None
    first = ipaddress.ip_address(rule.ip)
    size = rule.size or 1
    last_int = int(first) + size - 1
    if last_int > (1 << first.max_prefixlen) - 1:
        raise InputError(f"{rule.ip} + {size} addresses runs past the end of the address space",
                         f"{field}/SIZE")
    last = ipaddress.ip_address(last_int)
    return tuple(ipaddress.summarize_address_range(first, last))  # type: ignore[arg-type]


def _protocols(rule: SecurityGroupRule, family: int) -> list[str]:
    ip = "ip" if family == 4 else "ipv6"
    if rule.protocol == "ALL":
        return [ip]
    if rule.protocol in ("TCP", "UDP"):
        return [rule.protocol.lower() + ("" if family == 4 else "6")]
    if rule.protocol == "ICMP":
        return ["icmp"] if family == 4 else []
    if rule.protocol == "ICMPV6":
        return ["icmp6"] if family == 6 else []
    return [f"{ip},nw_proto={p}" for p in _IPSEC]


def rule_parts(rule: SecurityGroupRule, field: str) -> list[Part]:
    """Every part of one rule, in its direction; cheap (no match text), so it is also the count."""
    nets = networks(rule, field)
    families = (4, 6) if nets is None else (nets[0].version,)
    ranges = merge_ranges(rule.ranges) if rule.protocol in ("TCP", "UDP") else ()
    icmp = (f"icmp_type={rule.icmp_type}"
            if rule.icmp_type is not None and rule.protocol in ("ICMP", "ICMPV6") else "")
    return [Part(join(proto, icmp), _REMOTE[rule.rule_type, family], ranges, nets or ())
            for family in families for proto in _protocols(rule, family)]


def rule_matches(rule: SecurityGroupRule, field: str) -> list[str]:
    """Every match one rule allows, as plain flows (the product, whatever it costs)."""
    return [m for part in rule_parts(rule, field) for m in part.matches()]
