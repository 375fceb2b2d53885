"""The gateway's private nft table `ip onemetal`, rendered whole from the store, and read back.

Maps, not one rule per Elastic IP, so a packet costs the same with 1 or 100,000
mappings: eip_to_vm (DNAT of a secondary address to its VM), vm_to_eip (SNAT of a
mapped VM to its own address), forwards ((address, protocol, port) -> (VM, port)).
Chains: prerouting at dstnat and output (host-originated traffic) for DNAT,
postrouting at srcnat for SNAT, and the filters of nat/filters.py with their sets
`pool` and `subnets`, and those of nat/fence.py (`hosts`, `blocked`, `allowed`). The file replaces the table in one transaction
(`table ...` + `delete table ...` + the table) so no packet sees half of it.

Rendering and comparing are pure; reading back is nat/readback.py.

>>> from onemetal.nat.model import NatState
>>> print(render(NatState((), (), (), ())).splitlines()[2])
table ip onemetal {
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

from onemetal.nat import filters
from onemetal.nat.fence import Fence
from onemetal.nat.model import NatState
from onemetal.nat.nftjson import (ELEMENTS, Chain, MapHead, Rule, TableContent, lookup, match,
                                  payload, rule)
from onemetal.nat.readback import read_back, settled_read

__all__ = ["TableContent", "compare", "desired", "map_size", "read_back", "render",
           "settled_read"]

TABLE = "onemetal"
MAP_TYPES = {"eip_to_vm": "ipv4_addr : ipv4_addr", "vm_to_eip": "ipv4_addr : ipv4_addr",
             "forwards": "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"}
POOL_TYPE = "ipv4_addr"
SUBNETS_TYPE = "ipv4_addr flags interval"
ALLOWED_TYPE = "ipv4_addr . inet_proto . inet_service"
MIN_MAP_SIZE = 1024


def map_size(count: int) -> int:
    """The `size` a map of `count` elements is declared with.

    A map with a size gets the kernel's fixed-size hash, which never resizes; without one
    it gets a resizable hash, and a read during the resize that follows a big load lists
    some elements twice and others not at all. The kernel refuses elements past the size:
    a quarter more, rounded up to a power of two, leaves room for elements added by hand
    and keeps the declared size from changing with every few mappings."""
    return max(MIN_MAP_SIZE, 1 << (count + (count + 3) // 4 - 1).bit_length())


_FORWARD_KEY = {"concat": [payload("ip", "daddr"), {"meta": {"key": "l4proto"}},
                           payload("th", "dport")]}
_DNAT = (rule("dnat ip to ip daddr . meta l4proto . th dport map @forwards",
               {"dnat": {"addr": lookup(_FORWARD_KEY, "forwards")}}),
         rule("dnat ip to ip daddr map @eip_to_vm",
               {"dnat": {"addr": lookup(payload("ip", "daddr"), "eip_to_vm")}}))


def _snat_rules(cidr: str, snat_ip: str) -> tuple[Rule, Rule]:
    """A mapped VM leaves from its own EIP's address; every other VM from the vnet's."""
    address, length = cidr.split("/")
    prefix = {"prefix": {"addr": address, "len": int(length)}}
    outside = (match(payload("ip", "saddr"), prefix), match(payload("ip", "daddr"), prefix, "!="))
    text = f"ip saddr {cidr} ip daddr != {cidr}"
    return (rule(f"{text} snat ip to ip saddr map @vm_to_eip", *outside,
                  {"snat": {"addr": lookup(payload("ip", "saddr"), "vm_to_eip")}}),
            rule(f"{text} snat ip to {snat_ip}", *outside, {"snat": {"addr": snat_ip}}))


def _chains(state: NatState, fence: Fence) -> tuple[Chain, ...]:
    """The hook chains in the order render writes them; priorities as nft lists them
    (dstnat is -100, srcnat 100)."""
    snat = tuple(r for v in sorted(state.vnets) for r in _snat_rules(v.subnet, v.snat_ip))
    return (Chain("prerouting", "nat", "prerouting", -100, "accept", _DNAT),
            Chain("output", "nat", "output", -100, "accept", _DNAT),
            Chain("postrouting", "nat", "postrouting", 100, "accept", snat),
            *filters.filter_chains(fence))


def desired(state: NatState, fence: Fence = Fence()) -> TableContent:
    forwards = frozenset((f.private_ip, f.protocol, f.port, f.vm_ip, f.vm_port)
                         for f in state.forwards)
    pool = filters.pool_addresses(state)
    counts = {"eip_to_vm": len(state.mappings), "vm_to_eip": len(state.mappings),
              "forwards": len(forwards)}
    # An interval set does not resize like a hash: it needs no size.
    sets = (MapHead("pool", POOL_TYPE, map_size(len(pool)), "set"),
            MapHead("subnets", SUBNETS_TYPE, None, "set"),
            MapHead("hosts", POOL_TYPE, map_size(len(fence.hosts)), "set"),
            MapHead("blocked", SUBNETS_TYPE, None, "set"),
            MapHead("allowed", ALLOWED_TYPE, map_size(len(fence.allowed)), "set"))
    return TableContent(
        eip_to_vm=frozenset((m.private_ip, m.vm_ip) for m in state.mappings),
        vm_to_eip=frozenset((m.vm_ip, m.private_ip) for m in state.mappings),
        forwards=forwards,
        maps=frozenset((*(MapHead(n, MAP_TYPES[n], map_size(c)) for n, c in counts.items()),
                        *sets)),
        chains=frozenset(_chains(state, fence)), pool=pool, subnets=filters.subnets(state),
        hosts=fence.hosts, blocked=fence.blocked, allowed=fence.allowed)


def _element_texts(want: TableContent) -> dict[str, list[str]]:
    return {"eip_to_vm": [f"{a} : {b}" for a, b in sorted(want.eip_to_vm)],
            "vm_to_eip": [f"{a} : {b}" for a, b in sorted(want.vm_to_eip)],
            "forwards": [f"{a} . {p} . {port} : {ip} . {vport}"
                         for a, p, port, ip, vport in sorted(want.forwards)],
            "pool": sorted(want.pool), "subnets": sorted(want.subnets),
            "hosts": sorted(want.hosts), "blocked": sorted(want.blocked),
            "allowed": [f"{a} . {p} . {port}" for a, p, port in sorted(want.allowed)]}


def _declaration(head: MapHead, items: list[str]) -> list[str]:
    kind_type, *flags = head.type.split(" flags ")
    return [f"\t{head.kind} {head.name} {{", f"\t\ttype {kind_type}",
            *(f"\t\tflags {f}" for f in flags), *([f"\t\tsize {head.size}"] if head.size else []),
            *([f"\t\telements = {{ {', '.join(items)} }}"] if items else []), "\t}"]


def render(state: NatState, fence: Fence = Fence()) -> str:
    want = desired(state, fence)
    heads = {m.name: m for m in want.maps}
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    for name, items in _element_texts(want).items():
        lines += _declaration(heads[name], items)
    for chain in _chains(state, fence):
        lines += [f"\tchain {chain.name} {{", f"\t\t{chain.head()}",
                  *(f"\t\t{r.text}" for r in chain.rules), "\t}"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _rule_lines(want: tuple[Rule, ...], have: tuple[Rule, ...]) -> list[str]:
    """Rules in want's order (a DNAT by forward before the one by address): what is missing
    or foreign, numbered from 1 as each side lists them."""
    from difflib import SequenceMatcher  # only a table that differs pays its import (~1 ms)

    matcher = SequenceMatcher(a=[r.expr for r in want], b=[r.expr for r in have], autojunk=False)
    out = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            out += [f"rule {i + 1} missing: {want[i].text}" for i in range(i1, i2)]
            out += [f"rule {j + 1} is not ours: {have[j].expr[:120]}" for j in range(j1, j2)]
    return out


if TYPE_CHECKING:
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
    out = []
    for kind in ("map", "set"):
        lines, both = _by_name(kind, frozenset(x for x in want if x.kind == kind),
                               frozenset(x for x in have if x.kind == kind))
        out += lines + [f"{kind} {w.name}: type {h.type} size {h.size} "
                        f"(want type {w.type} size {w.size})" for w, h in both if w != h]
    return out


def _words(element: object) -> str:
    return " ".join(map(str, element)) if isinstance(element, tuple) else str(element)


def compare(want: TableContent, have: TableContent) -> list[str]:
    """The differences, as `onenat plan` prints them (empty: converged)."""
    if not have.present:
        return [f"+ table ip {TABLE} (absent on the gateway)"]
    out = _map_lines(want.maps, have.maps)
    for name in ELEMENTS:
        w, h = getattr(want, name), getattr(have, name)
        out += [f"+ {name} {_words(e)}" for e in sorted(w - h)]
        out += [f"- {name} {_words(e)}" for e in sorted(h - w)]
    return out + _chain_lines(want.chains, have.chains)
