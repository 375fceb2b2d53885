"""The gateway's table as `nft -j list table ip onemetal` shows it, read until it holds still.

`read_back` is pure; `settled_read` is the one function that waits (between the
reads it is given).
"""

from __future__ import annotations

import json
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

from onemetal.errors import OneMetalError
from onemetal.nat.nftjson import Chain, MapHead, Rule, TableContent, canonical

READS = 5           # at most this many reads to find two that agree
READ_PAUSE = 0.2    # seconds between two reads


def _addr(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _interval(value: object) -> str:
    """An interval set's element as a CIDR: nft lists a /32 as a bare address."""
    if isinstance(value, str):
        return f"{value}/32"
    prefix = value.get("prefix") if isinstance(value, dict) else None
    return f"{prefix['addr']}/{prefix['len']}" if prefix else json.dumps(value)


def _type(value: object) -> str:
    return " . ".join(value) if isinstance(value, list) else str(value)


def _head(item: dict[str, Any], kind: str) -> MapHead:
    kind_type = _type(item["type"]) + (f" : {_type(item['map'])}" if kind == "map" else "")
    flags = item.get("flags", [])
    flags = [flags] if isinstance(flags, str) else flags
    return MapHead(item["name"], kind_type + "".join(f" flags {f}" for f in flags),
                   item.get("size"), kind)


def _forward(element: list[Any]) -> tuple[str, str, int, str, int]:
    (address, proto, port), (vm_ip, vm_port) = element[0]["concat"], element[1]["concat"]
    return address, proto, int(port), vm_ip, int(vm_port)


def _service(element: Any) -> tuple[str, str, int]:
    address, proto, port = element["concat"]
    return address, proto, int(port)


def read_back(nft_json: str) -> TableContent:
    """`nft -j list table ip onemetal` as TableContent (absent table: present=False)."""
    if not nft_json.strip():
        return TableContent(frozenset(), frozenset(), frozenset(), present=False)
    items = json.loads(nft_json)["nftables"]
    declared = {i[kind]["name"]: (kind, i[kind]) for i in items for kind in ("map", "set")
                if kind in i}
    rules: dict[str, list[Rule]] = {}
    for rule in (i["rule"] for i in items if "rule" in i):  # listed in the chain's order
        rules.setdefault(rule["chain"], []).append(Rule(canonical(rule["expr"])))
    chains = frozenset(Chain(c["name"], c.get("type"), c.get("hook"), c.get("prio"),
                             c.get("policy"), tuple(rules.get(c["name"], ())))
                       for c in (i["chain"] for i in items if "chain" in i))

    def elements(name: str) -> list[Any]:
        return declared.get(name, ("", {}))[1].get("elem", [])
    pairs = {name: [(_addr(k), _addr(v)) for k, v in elements(name)]
             for name in ("eip_to_vm", "vm_to_eip")}
    forwards = [_forward(e) for e in elements("forwards")]
    pool = [_addr(e) for e in elements("pool")]
    subnets = [_interval(e) for e in elements("subnets")]
    hosts = [_addr(e) for e in elements("hosts")]
    blocked = [_interval(e) for e in elements("blocked")]
    allowed = [_service(e) for e in elements("allowed")]
    listed: list[list[Any]] = [*pairs.values(), forwards, pool, subnets, hosts, blocked, allowed]
    return TableContent(
        frozenset(pairs["eip_to_vm"]), frozenset(pairs["vm_to_eip"]), frozenset(forwards),
        maps=frozenset(_head(item, kind) for kind, item in declared.values()),
        chains=chains, duplicates=sum(len(e) - len(set(e)) for e in listed),
        pool=frozenset(pool), subnets=frozenset(subnets), hosts=frozenset(hosts),
        blocked=frozenset(blocked), allowed=frozenset(allowed))


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
