"""The bound on what a NIC's security group rules may cost, checked before any flow exists (pure).

Rules are tenant input: one rule with every odd port over a large address range
would be two million flows, built and loaded while the host's network lock is
held. So the flows are counted from the rules (a part's cost is arithmetic on
its port masks and networks) and a NIC over net.max_flows_per_nic is refused,
naming its costliest rule, before a single match is written.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, Sequence

from onemetal.errors import InputError
from onemetal.net.secgroups_match import Part
from onemetal.opennebula.vm import SecurityGroupRule

_SHOWN_RANGES = 4  # a hostile RANGE has tens of thousands of entries; the error stays one line


def _ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    parts = [f"{lo}" if lo == hi else f"{lo}:{hi}" for lo, hi in ranges]
    if len(parts) <= _SHOWN_RANGES + 1:
        return ",".join(parts)
    return f"{','.join(parts[:_SHOWN_RANGES])},...,{parts[-1]} ({len(parts)} entries)"


def describe(rule: SecurityGroupRule, position: int) -> str:
    """The rule as its owner wrote it: position in its group, direction, PROTOCOL, RANGE, range."""
    out = [f"rule {position} of security group {rule.security_group_id}", rule.rule_type,
           f"PROTOCOL={rule.protocol}"]
    if rule.ranges:
        out.append(f"RANGE={_ranges_text(rule.ranges)}")
    if rule.network_id is not None:
        out.append(f"NETWORK_ID={rule.network_id}")
    if rule.ip is not None:
        out.append(f"IP={rule.ip} SIZE={rule.size or 1}")
    return f"{out[0]} ({', '.join(out[1:])})"


def position_in_group(rules: Sequence[SecurityGroupRule], index: int) -> int:
    """1-based, as the group lists its rules."""
    group = rules[index].security_group_id
    return sum(1 for r in rules[:index + 1] if r.security_group_id == group)


def check_bound(rules: Sequence[SecurityGroupRule],
                parts: Mapping[str, Sequence[tuple[int, Sequence[Part]]]], max_flows: int,
                field_of: Callable[[SecurityGroupRule], str]) -> int:
    """The flows the rules need (an upper bound: rendering may merge duplicates); raises
    InputError naming the costliest rule when that is above max_flows."""
    costs = [(sum(p.flows for p in ps), index) for indexed in parts.values()
             for index, ps in indexed]
    total = sum(cost for cost, _ in costs)
    if total <= max_flows:
        return total
    cost, index = max(costs, key=lambda c: (c[0], -c[1]))
    rule = rules[index]
    raise InputError(f"{describe(rule, position_in_group(rules, index))} compiles to {cost} "
                     f"flows; this NIC's rules need at least {total}, more than net.max_flows_per_nic "
                     f"({max_flows}): use fewer ports or address ranges, or ports as ranges",
                     field_of(rule))
