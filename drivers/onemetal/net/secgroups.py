"""OpenNebula security group rules as OpenFlow matches (pure).

OpenNebula's semantics: once a NIC has rules, each direction is a whitelist;
replies to allowed connections pass (stateful, via conntrack); a rule names a
protocol (ALL, TCP, UDP, ICMP, ICMPV6, IPSEC), optional destination port
ranges, an optional ICMP type and an optional address range (IP + SIZE, which
oned fills in from the vnet's address ranges for NETWORK_ID rules). ARP and
IPv6 neighbour discovery are not IP traffic to filter, as with the iptables
implementation of the Linux-bridge drivers.

>>> port_masks(80, 90)
((80, 65528), (88, 65534), (90, 65535))
>>> compile_direction([], "inbound")
()
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Sequence

from onemetal.errors import InputError
from onemetal.opennebula.vm import SecurityGroupRule

log = logging.getLogger(__name__)

# ESP and AH, as OpenNebula's own drivers translate IPSEC.
_IPSEC = (50, 51)
# The remote end of a connection: its source address inbound, its destination outbound.
_REMOTE = {("inbound", 4): "nw_src", ("outbound", 4): "nw_dst",
           ("inbound", 6): "ipv6_src", ("outbound", 6): "ipv6_dst"}


@dataclass(frozen=True)
class Filter:
    """Matches each direction allows; None: the direction is open (no filtering at all)."""
    inbound: tuple[str, ...] | None
    outbound: tuple[str, ...] | None

    @property
    def open(self) -> bool:
        return self.inbound is None and self.outbound is None


OPEN = Filter(None, None)


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


def _ports(rule: SecurityGroupRule) -> list[str]:
    if not rule.ranges:
        return [""]
    return [f"tp_dst={value}" if mask == 0xFFFF else f"tp_dst={value:#x}/{mask:#x}"
            for lo, hi in rule.ranges for value, mask in port_masks(lo, hi)]


def _networks(rule: SecurityGroupRule, field: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """The rule's address range as networks; None when it has none (any address)."""
    if rule.ip is None:
        return None
    first = ipaddress.ip_address(rule.ip)
    size = rule.size or 1
    last_int = int(first) + size - 1
    top = (1 << first.max_prefixlen) - 1
    if last_int > top:
        raise InputError(f"{rule.ip} + {size} addresses runs past the end of the address space",
                         f"{field}/SIZE")
    last = ipaddress.ip_address(last_int)
    return list(ipaddress.summarize_address_range(first, last))  # type: ignore[arg-type]


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


def rule_matches(rule: SecurityGroupRule, field: str) -> list[str]:
    """Every match one rule allows, in its direction."""
    networks = _networks(rule, field)
    families = (4, 6) if networks is None else (networks[0].version,)
    out = []
    for family in families:
        for proto in _protocols(rule, family):
            base = [proto]
            if rule.icmp_type is not None and rule.protocol in ("ICMP", "ICMPV6"):
                base.append(f"icmp_type={rule.icmp_type}")
            ports = _ports(rule) if rule.protocol in ("TCP", "UDP") else [""]
            nets = [""] if networks is None else [f"{_REMOTE[rule.rule_type, family]}={n}"
                                                  for n in networks]
            for net in nets:
                for port in ports:
                    out.append(",".join(p for p in (*base, net, port) if p))
    return out


def _opens_everything(rule: SecurityGroupRule) -> bool:
    return rule.protocol == "ALL" and rule.ip is None


def compile_direction(rules: Sequence[SecurityGroupRule], direction: str) -> tuple[str, ...]:
    out: list[str] = []
    for index, rule in enumerate(rules):
        if rule.rule_type != direction:
            continue
        field = f"SECURITY_GROUP_RULE[SECURITY_GROUP_ID={rule.security_group_id}][{index}]"
        if rule.ip is None and rule.network_id is not None:
            # oned expands NETWORK_ID into IP/SIZE per address range; none means no IPv4/IPv6 range.
            log.warning("%s: NETWORK_ID %d has no address range; the rule allows nothing",
                        field, rule.network_id)
            continue
        out.extend(rule_matches(rule, field))
    return tuple(dict.fromkeys(out))


def compile_filter(rules: Sequence[SecurityGroupRule]) -> Filter:
    """A NIC's rules as a Filter: no rules at all means no filtering."""
    if not rules:
        return OPEN
    directions = {}
    for direction in ("inbound", "outbound"):
        chosen = [r for r in rules if r.rule_type == direction]
        directions[direction] = (None if any(_opens_everything(r) for r in chosen)
                                 else compile_direction(rules, direction))
    return Filter(inbound=directions["inbound"], outbound=directions["outbound"])
