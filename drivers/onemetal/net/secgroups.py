"""OpenNebula security group rules as OpenFlow matches, within a bound (pure).

OpenNebula's semantics: once a NIC has rules, each direction is a whitelist;
replies to allowed connections pass (stateful, via conntrack); a rule names a
protocol (ALL, TCP, UDP, ICMP, ICMPV6, IPSEC), optional destination port
ranges, an optional ICMP type and an optional address range (IP + SIZE, which
oned fills in from the vnet's address ranges for NETWORK_ID rules). ARP and
IPv6 neighbour discovery are not IP traffic to filter, as with the iptables
implementation of the Linux-bridge drivers.

Rules are written by tenants, so what they cost is bounded: the flows a NIC's
rules compile to are counted from the rules alone (secgroups_match.Part.flows)
and checked against net.max_flows_per_nic before any match text is built. A
rule with many ports and many networks compiles to an OVS conjunctive match
(ports + networks + 1 flows instead of ports x networks).

>>> compile_direction([], "inbound")
()
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from onemetal import lazylog
from onemetal.errors import InputError
from onemetal.net.secgroups_bound import check_bound
from onemetal.net.secgroups_match import Part, port_masks, rule_matches, rule_parts
from onemetal.opennebula.vm import SecurityGroupRule
from onemetal.record import value

__all__ = ["CONJUNCTION_PRIORITY", "Conjunction", "Filter", "OPEN", "compile_direction",
           "compile_filter", "conj_id", "conjunction_flows", "port_masks", "rule_matches"]

log = lazylog.getLogger(__name__)

DEFAULT_MAX_FLOWS = 2000  # NetConfig.max_flows_per_nic's default, for callers without a config
# Below the plain whitelist's priority (100 in pipeline.py): a conjunction's clause flow
# may have the same match as a plain flow, and two flows of one match and priority are one.
CONJUNCTION_PRIORITY = 90
_MAX_INDEX = 0xFFFF  # conj_id = ofport << 16 | index, and ofports fit in 16 bits


@value
class Conjunction:
    """Allowed: a packet matching one match of each clause. index (1..65535) is unique within
    the NIC's Filter; with the port's ofport it makes the conj_id (conj_id below). base is the
    protocol every clause matches, which the conj_id flow repeats: OVS checks its actions'
    prerequisites (ct needs IP) against its own match."""
    index: int
    base: str
    clauses: tuple[tuple[str, ...], ...]


@value
class Filter:
    """Matches each direction allows; None: the direction is open (no filtering at all).
    The conjunctions of a direction allow more, on top of its plain matches."""
    inbound: tuple[str, ...] | None
    outbound: tuple[str, ...] | None
    inbound_conjunctions: tuple[Conjunction, ...] = ()
    outbound_conjunctions: tuple[Conjunction, ...] = ()

    @property
    def open(self) -> bool:
        return self.inbound is None and self.outbound is None

    def flow_count(self) -> int:
        """The whitelist flows of both directions, as the pipeline renders them."""
        plain = len(self.inbound or ()) + len(self.outbound or ())
        return plain + sum(len(conjunction_flows(c, 1, "drop"))
                           for c in (self.inbound_conjunctions, self.outbound_conjunctions))


OPEN = Filter(None, None)


def conj_id(ofport: int, index: int) -> int:
    """Unique in a table: one port's conjunctions never complete another's. Never 0, which is
    the conj_id every packet carries outside a conjunctive lookup."""
    return ofport << 16 | index


def conjunction_flows(conjunctions: Sequence[Conjunction], ofport: int,
                      allow: str) -> list[tuple[str, str]]:
    """(match, actions) of one direction's conjunctions on port `ofport`: one flow per distinct
    clause match, carrying a conjunction action for every conjunction it belongs to (OpenFlow
    keeps one flow per match and priority), then one `conj_id=N` flow per conjunction with
    `allow`. Every flow goes at CONJUNCTION_PRIORITY, after the caller's own match prefix.

    Two rules' conjunctions may overlap (a packet completes both); OVS then picks one of them,
    and since every conj_id flow does the same `allow`, the verdict does not depend on which."""
    actions: dict[str, list[str]] = {}
    for c in conjunctions:
        n = len(c.clauses)
        for k, clause in enumerate(c.clauses, 1):
            for match in clause:
                actions.setdefault(match, []).append(
                    f"conjunction({conj_id(ofport, c.index)},{k}/{n})")
    return ([(m, ",".join(a)) for m, a in actions.items()]
            + [(f"{c.base},conj_id={conj_id(ofport, c.index)}", allow) for c in conjunctions])


def _opens_everything(rule: SecurityGroupRule) -> bool:
    # A NETWORK_ID rule without an address range allows nothing (see _parts), not everything.
    return rule.protocol == "ALL" and rule.ip is None and rule.network_id is None


def rule_field(rule: SecurityGroupRule, nic_id: int | None) -> str:
    nic = "" if nic_id is None else f"NIC[NIC_ID={nic_id}]/"
    return f"{nic}SECURITY_GROUP_RULE[SECURITY_GROUP_ID={rule.security_group_id}]"


def _parts(rules: Sequence[SecurityGroupRule], direction: str, nic_id: int | None,
           budget: int | None = None) -> list[tuple[int, list[Part]]]:
    """(index in rules, parts) of each rule of `direction` that allows something.

    With a budget, stops at the first rule that takes the parts past it: the bound refuses
    them anyway, and thousands of hostile rules are not worth building (each rule costs at
    least one flow, so at most budget + 1 rules are ever looked at)."""
    out = []
    spent = 0
    for index, rule in enumerate(rules):
        if rule.rule_type != direction:
            continue
        field = f"{rule_field(rule, nic_id)}[{index}]"
        if rule.ip is None and rule.network_id is not None:
            # oned expands NETWORK_ID into IP/SIZE per address range; none means no IPv4/IPv6 range.
            log.warning("%s: NETWORK_ID %d has no address range; the rule allows nothing",
                        field, rule.network_id)
            continue
        parts = rule_parts(rule, field)
        out.append((index, parts))
        spent += sum(p.flows for p in parts)
        if budget is not None and spent > budget:
            break
    return out


def _render(parts: Sequence[Part], first_index: int) -> tuple[tuple[str, ...], tuple[Conjunction, ...]]:
    plain = [m for p in parts if not p.conjunctive for m in p.matches()]
    conjunctive = dict.fromkeys((p.base, p.clauses()) for p in parts if p.conjunctive)
    return (tuple(dict.fromkeys(plain)),
            tuple(Conjunction(first_index + i, base, clauses)
                  for i, (base, clauses) in enumerate(conjunctive)))


def compile_direction(rules: Sequence[SecurityGroupRule], direction: str) -> tuple[str, ...]:
    """The plain matches of one direction (the conjunctions aside), unbounded: for inspection."""
    return _render([p for _, parts in _parts(rules, direction, None) for p in parts], 1)[0]


def compile_filter(rules: Sequence[SecurityGroupRule], max_flows: int = DEFAULT_MAX_FLOWS,
                   *, nic_id: int | None = None) -> Filter:
    """A NIC's rules as a Filter: no rules at all means no filtering. Raises InputError naming
    the costliest rule when the rules need more than `max_flows` flows, before building any."""
    if not rules:
        return OPEN
    closed: dict[str, list[tuple[int, list[Part]]]] = {}
    left = max_flows
    for direction in ("inbound", "outbound"):
        chosen = [r for r in rules if r.rule_type == direction]
        if not any(_opens_everything(r) for r in chosen):  # an open one compiles nothing
            closed[direction] = _parts(rules, direction, nic_id, left)
            left -= sum(p.flows for _, ps in closed[direction] for p in ps)
    check_bound(rules, closed, max_flows, lambda r: rule_field(r, nic_id))
    conjunctive = sum(p.conjunctive for indexed in closed.values() for _, ps in indexed for p in ps)
    if conjunctive > _MAX_INDEX:
        raise InputError(f"{conjunctive} rules and families need a conjunctive match; one NIC "
                         f"can number {_MAX_INDEX}", rule_field(rules[0], nic_id))
    built: dict[str, tuple[tuple[str, ...], tuple[Conjunction, ...]]] = {}
    next_index = 1
    for direction, indexed in closed.items():
        built[direction] = _render([p for _, ps in indexed for p in ps], next_index)
        next_index += len(built[direction][1])
    inbound, inbound_conj = built.get("inbound", (None, ()))
    outbound, outbound_conj = built.get("outbound", (None, ()))
    return Filter(inbound, outbound, inbound_conj, outbound_conj)
