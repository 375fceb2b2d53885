"""The gateway's private nft table `ip onemetal`, rendered whole from the store, and read back.

Maps, not one rule per Elastic IP, so a packet costs the same with 1 or 100,000
mappings: eip_to_vm (DNAT of a secondary address to its VM), vm_to_eip (SNAT of a
mapped VM to its own address), forwards ((address, protocol, port) -> (VM, port)).
Chains: prerouting at dstnat and output (host-originated traffic) for DNAT,
postrouting at srcnat for SNAT. The file replaces the table in one transaction
(`table ...` + `delete table ...` + the table) so no packet sees half of it.

Rendering, reading back and comparing are pure; `settled_read` is the one function
that waits (between the reads it is given).

>>> from onemetal.nat.model import NatState
>>> print(render(NatState((), (), (), ())).splitlines()[2])
table ip onemetal {
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Callable, TypeVar

from onemetal.errors import OneMetalError
from onemetal.nat.model import NatState

TABLE = "onemetal"
MAP_TYPES = {"eip_to_vm": "ipv4_addr : ipv4_addr", "vm_to_eip": "ipv4_addr : ipv4_addr",
             "forwards": "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"}
MIN_MAP_SIZE = 1024
READS = 5           # at most this many reads to find two that agree
READ_PAUSE = 0.2    # seconds between two reads


@dataclass(frozen=True)
class Rule:
    """A rule as nft -j lists its expression (canonical JSON); equal on the expression alone.
    `text` is what render writes (empty for a rule read back)."""
    expr: str
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class MapHead:
    name: str
    type: str
    size: int | None


@dataclass(frozen=True)
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


def map_size(count: int) -> int:
    """The `size` a map of `count` elements is declared with.

    A map with a size gets the kernel's fixed-size hash, which never resizes; without one
    it gets a resizable hash, and a read during the resize that follows a big load lists
    some elements twice and others not at all. The kernel refuses elements past the size:
    a quarter more, rounded up to a power of two, leaves room for elements added by hand
    and keeps the declared size from changing with every few mappings."""
    return max(MIN_MAP_SIZE, 1 << (count + (count + 3) // 4 - 1).bit_length())


def _canonical(statements: list[Any]) -> str:
    """A rule's expression, keyed and spaced one way. nft names a NAT statement's family
    only where it needs it (1.0.6: with a concatenated key); the table's is the only one."""
    def statement(s: dict[str, Any]) -> dict[str, Any]:
        return {k: ({a: b for a, b in v.items() if a != "family"} if k in ("dnat", "snat")
                    and isinstance(v, dict) else v) for k, v in s.items()}
    return json.dumps([statement(s) for s in statements], sort_keys=True, separators=(",", ":"))


def _rule(text: str, *statements: dict[str, Any]) -> Rule:
    return Rule(_canonical(list(statements)), text)


def _payload(protocol: str, name: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": name}}


def _lookup(key: dict[str, Any], name: str) -> dict[str, Any]:
    return {"map": {"key": key, "data": f"@{name}"}}


_FORWARD_KEY = {"concat": [_payload("ip", "daddr"), {"meta": {"key": "l4proto"}},
                           _payload("th", "dport")]}
_DNAT = (_rule("dnat ip to ip daddr . meta l4proto . th dport map @forwards",
               {"dnat": {"addr": _lookup(_FORWARD_KEY, "forwards")}}),
         _rule("dnat ip to ip daddr map @eip_to_vm",
               {"dnat": {"addr": _lookup(_payload("ip", "daddr"), "eip_to_vm")}}))


def _snat_rules(cidr: str, snat_ip: str) -> tuple[Rule, Rule]:
    """A mapped VM leaves from its own EIP's address; every other VM from the vnet's."""
    address, length = cidr.split("/")
    prefix = {"prefix": {"addr": address, "len": int(length)}}
    outside = ({"match": {"op": "==", "left": _payload("ip", "saddr"), "right": prefix}},
               {"match": {"op": "!=", "left": _payload("ip", "daddr"), "right": prefix}})
    text = f"ip saddr {cidr} ip daddr != {cidr}"
    return (_rule(f"{text} snat ip to ip saddr map @vm_to_eip", *outside,
                  {"snat": {"addr": _lookup(_payload("ip", "saddr"), "vm_to_eip")}}),
            _rule(f"{text} snat ip to {snat_ip}", *outside, {"snat": {"addr": snat_ip}}))


def _chains(state: NatState) -> tuple[Chain, ...]:
    """The hook chains in the order render writes them; priorities as nft lists them
    (dstnat is -100, srcnat 100)."""
    snat = tuple(r for v in sorted(state.vnets) for r in _snat_rules(v.subnet, v.snat_ip))
    return (Chain("prerouting", "nat", "prerouting", -100, "accept", _DNAT),
            Chain("output", "nat", "output", -100, "accept", _DNAT),
            Chain("postrouting", "nat", "postrouting", 100, "accept", snat))


def desired(state: NatState) -> TableContent:
    forwards = frozenset((f.private_ip, f.protocol, f.port, f.vm_ip, f.vm_port)
                         for f in state.forwards)
    counts = {"eip_to_vm": len(state.mappings), "vm_to_eip": len(state.mappings),
              "forwards": len(forwards)}
    return TableContent(
        eip_to_vm=frozenset((m.private_ip, m.vm_ip) for m in state.mappings),
        vm_to_eip=frozenset((m.vm_ip, m.private_ip) for m in state.mappings),
        forwards=forwards,
        maps=frozenset(MapHead(n, MAP_TYPES[n], map_size(c)) for n, c in counts.items()),
        chains=frozenset(_chains(state)))


def _element_texts(want: TableContent) -> dict[str, list[str]]:
    return {"eip_to_vm": [f"{a} : {b}" for a, b in sorted(want.eip_to_vm)],
            "vm_to_eip": [f"{a} : {b}" for a, b in sorted(want.vm_to_eip)],
            "forwards": [f"{a} . {p} . {port} : {ip} . {vport}"
                         for a, p, port, ip, vport in sorted(want.forwards)]}


def render(state: NatState) -> str:
    want = desired(state)
    heads = {m.name: m for m in want.maps}
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    for name, items in _element_texts(want).items():
        head = heads[name]
        lines += [f"\tmap {name} {{", f"\t\ttype {head.type}", f"\t\tsize {head.size}",
                  *([f"\t\telements = {{ {', '.join(items)} }}"] if items else []), "\t}"]
    for chain in _chains(state):
        lines += [f"\tchain {chain.name} {{", f"\t\t{chain.head()}",
                  *(f"\t\t{r.text}" for r in chain.rules), "\t}"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _addr(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _type(value: object) -> str:
    return " . ".join(value) if isinstance(value, list) else str(value)


def _forward(element: list[Any]) -> tuple[str, str, int, str, int]:
    (address, proto, port), (vm_ip, vm_port) = element[0]["concat"], element[1]["concat"]
    return address, proto, int(port), vm_ip, int(vm_port)


def read_back(nft_json: str) -> TableContent:
    """`nft -j list table ip onemetal` as TableContent (absent table: present=False)."""
    if not nft_json.strip():
        return TableContent(frozenset(), frozenset(), frozenset(), present=False)
    items = json.loads(nft_json)["nftables"]
    maps = {i["map"]["name"]: i["map"] for i in items if "map" in i}
    rules: dict[str, list[Rule]] = {}
    for rule in (i["rule"] for i in items if "rule" in i):  # listed in the chain's order
        rules.setdefault(rule["chain"], []).append(Rule(_canonical(rule["expr"])))
    chains = frozenset(Chain(c["name"], c.get("type"), c.get("hook"), c.get("prio"),
                             c.get("policy"), tuple(rules.get(c["name"], ())))
                       for c in (i["chain"] for i in items if "chain" in i))
    elements = {name: maps.get(name, {}).get("elem", []) for name in MAP_TYPES}
    pairs = {name: [(_addr(k), _addr(v)) for k, v in elements[name]]
             for name in ("eip_to_vm", "vm_to_eip")}
    forwards = [_forward(e) for e in elements["forwards"]]
    listed = [*pairs.values(), forwards]
    return TableContent(
        frozenset(pairs["eip_to_vm"]), frozenset(pairs["vm_to_eip"]), frozenset(forwards),
        maps=frozenset(MapHead(n, f"{_type(m['type'])} : {_type(m['map'])}", m.get("size"))
                       for n, m in maps.items()),
        chains=chains, duplicates=sum(len(e) - len(set(e)) for e in listed))


def settled_read(read: Callable[[], str], reads: int = READS, pause: float = READ_PAUSE,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[TableContent, int]:
    """The table as two consecutive reads list it the same, and how many reads that took.

    Right after a big load the kernel may still be changing a map's hash, and a read then
    lists elements twice or misses some; a second read a moment later is right. Two equal
    listings without a duplicate element are taken as settled; at most `reads` reads."""
    last: str | None = None
    for count in range(1, reads + 1):
        if count > 1:
            sleep(pause)
        text = read()
        if text == last:
            content = read_back(text)
            if not content.duplicates:
                return content, count
        last = text
    raise OneMetalError(f"the table did not list the same twice in a row in {reads} reads",
                        "nft")


def _rule_lines(want: tuple[Rule, ...], have: tuple[Rule, ...]) -> list[str]:
    """Rules in want's order (a DNAT by forward before the one by address): what is missing
    or foreign, numbered from 1 as each side lists them."""
    matcher = SequenceMatcher(a=[r.expr for r in want], b=[r.expr for r in have], autojunk=False)
    out = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            out += [f"rule {i + 1} missing: {want[i].text}" for i in range(i1, i2)]
            out += [f"rule {j + 1} is not ours: {have[j].expr[:120]}" for j in range(j1, j2)]
    return out


Named = TypeVar("Named", Chain, MapHead)


def _by_name(kind: str, want: frozenset[Named],
             have: frozenset[Named]) -> tuple[list[str], list[tuple[Named, Named]]]:
    """Lines for what only one side has, and the (want, have) pairs of what both have."""
    w, h = {x.name: x for x in want}, {x.name: x for x in have}
    lines = [f"{kind} {name}: {'missing' if name in w else 'not ours'}"
             for name in sorted(w.keys() ^ h.keys())]
    return lines, [(w[name], h[name]) for name in sorted(w.keys() & h.keys())]


def _chain_lines(want: frozenset[Chain], have: frozenset[Chain]) -> list[str]:
    out, both = _by_name("chain", want, have)
    for w, h in both:
        if w.head() != h.head():
            out.append(f"chain {w.name}: {h.head()} (want {w.head()})")
        out += [f"chain {w.name}: {line}" for line in _rule_lines(w.rules, h.rules)]
    return out


def _map_lines(want: frozenset[MapHead], have: frozenset[MapHead]) -> list[str]:
    out, both = _by_name("map", want, have)
    return out + [f"map {w.name}: type {h.type} size {h.size} (want type {w.type} size {w.size})"
                  for w, h in both if w != h]


def compare(want: TableContent, have: TableContent) -> list[str]:
    """The differences, as `onenat plan` prints them (empty: converged)."""
    if not have.present:
        return [f"+ table ip {TABLE} (absent on the gateway)"]
    out = _map_lines(want.maps, have.maps)
    for name in ("eip_to_vm", "vm_to_eip", "forwards"):
        w, h = getattr(want, name), getattr(have, name)
        out += [f"+ {name} {' '.join(map(str, e))}" for e in sorted(w - h)]
        out += [f"- {name} {' '.join(map(str, e))}" for e in sorted(h - w)]
    return out + _chain_lines(want.chains, have.chains)
