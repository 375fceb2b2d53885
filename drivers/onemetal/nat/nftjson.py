"""The parts of the gateway's nft table as both sides compare them: rendered, and listed by nft -j.

A rule is kept as its expression in nft's JSON, keyed and spaced one way, so a rule
render writes and the same rule read back compare equal (pure).
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from onemetal.record import field, value


@value
class Rule:
    """A rule as nft -j lists its expression (canonical JSON); equal on the expression alone.
    `text` is what render writes (empty for a rule read back)."""
    expr: str
    text: str = field(default="", compare=False)


@value
class Chain:
    name: str
    type: str | None
    hook: str | None
    prio: int | None
    policy: str | None
    rules: tuple[Rule, ...]

    def head(self) -> str:
        if self.hook is None:
            return "no hook"
        return f"type {self.type} hook {self.hook} priority {self.prio}; policy {self.policy};"


@value
class MapHead:
    """A map's or a set's declaration (`kind` says which); `type` includes any flags."""
    name: str
    type: str
    size: int | None
    kind: str = "map"


@value
class TableContent:
    """What a rendered or read-back table holds, in a form both sides compare equal on."""
    eip_to_vm: frozenset[tuple[str, str]]
    vm_to_eip: frozenset[tuple[str, str]]
    forwards: frozenset[tuple[str, str, int, str, int]]
    maps: frozenset[MapHead] = frozenset()
    chains: frozenset[Chain] = frozenset()
    present: bool = True
    # Elements a read listed more than once: the read caught the kernel changing the map.
    duplicates: int = field(default=0, compare=False)
    pool: frozenset[str] = frozenset()      # the set `pool`: addresses input drops
    subnets: frozenset[str] = frozenset()   # the set `subnets`: the NATed vnets, as CIDRs
    hosts: frozenset[str] = frozenset()     # the sets of nat/fence.py: what VMs must not reach
    blocked: frozenset[str] = frozenset()
    allowed: frozenset[tuple[str, str, int]] = frozenset()


# The element sets compare() reports on, in the order it reports them.
ELEMENTS = ("eip_to_vm", "vm_to_eip", "forwards", "pool", "subnets", "hosts", "blocked", "allowed")


def canonical(statements: list[Any]) -> str:
    """A rule's expression, keyed and spaced one way. nft names a NAT statement's family
    only where it needs it (1.0.6: with a concatenated key); the table's is the only one."""
    def statement(s: dict[str, Any]) -> dict[str, Any]:
        return {k: ({a: b for a, b in v.items() if a != "family"} if k in ("dnat", "snat")
                    and isinstance(v, dict) else v) for k, v in s.items()}
    return json.dumps([statement(s) for s in statements], sort_keys=True, separators=(",", ":"))


def rule(text: str, *statements: dict[str, Any]) -> Rule:
    return Rule(canonical(list(statements)), text)


def payload(protocol: str, name: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": name}}


def lookup(key: dict[str, Any], name: str) -> dict[str, Any]:
    return {"map": {"key": key, "data": f"@{name}"}}


def match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def verdict(name: str) -> dict[str, Any]:
    return {name: None}
