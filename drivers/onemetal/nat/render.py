"""The gateway's private nft table `ip onemetal`, rendered whole from the store (pure).

Maps, not one rule per Elastic IP, so a packet costs the same with 1 or 100,000
mappings: eip_to_vm (DNAT of a secondary address to its VM), vm_to_eip (SNAT of a
mapped VM to its own address), forwards ((address, protocol, port) -> (VM, port)).
Chains: prerouting at dstnat and output (host-originated traffic) for DNAT,
postrouting at srcnat for SNAT. The file replaces the table in one transaction
(`table ...` + `delete table ...` + the table) so no packet sees half of it.

>>> from onemetal.nat.model import NatState
>>> print(render(NatState((), (), (), ())).splitlines()[2])
table ip onemetal {
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from onemetal.nat.model import NatState

TABLE = "onemetal"


@dataclass(frozen=True)
class TableContent:
    """What a rendered or read-back table holds, in a form both sides compare equal on."""
    eip_to_vm: frozenset[tuple[str, str]]
    vm_to_eip: frozenset[tuple[str, str]]
    forwards: frozenset[tuple[str, str, int, str, int]]
    snat: frozenset[tuple[str, str]]          # (subnet, snat address)
    present: bool = True


def desired(state: NatState) -> TableContent:
    return TableContent(
        eip_to_vm=frozenset((m.private_ip, m.vm_ip) for m in state.mappings),
        vm_to_eip=frozenset((m.vm_ip, m.private_ip) for m in state.mappings),
        forwards=frozenset((f.private_ip, f.protocol, f.port, f.vm_ip, f.vm_port)
                           for f in state.forwards),
        snat=frozenset((v.subnet, v.snat_ip) for v in state.vnets))


def _elements(items: list[str]) -> list[str]:
    return [f"\t\telements = {{ {', '.join(items)} }}"] if items else []


def render(state: NatState) -> str:
    want = desired(state)
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
             "\tmap eip_to_vm {", "\t\ttype ipv4_addr : ipv4_addr",
             *_elements([f"{a} : {b}" for a, b in sorted(want.eip_to_vm)]), "\t}",
             "\tmap vm_to_eip {", "\t\ttype ipv4_addr : ipv4_addr",
             *_elements([f"{a} : {b}" for a, b in sorted(want.vm_to_eip)]), "\t}",
             "\tmap forwards {",
             "\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
             *_elements([f"{a} . {p} . {port} : {ip} . {vport}"
                         for a, p, port, ip, vport in sorted(want.forwards)]), "\t}"]
    dnat = ["\t\tdnat ip to ip daddr . meta l4proto . th dport map @forwards",
            "\t\tdnat ip to ip daddr map @eip_to_vm"]
    lines += ["\tchain prerouting {",
              "\t\ttype nat hook prerouting priority dstnat; policy accept;", *dnat, "\t}",
              "\tchain output {", "\t\ttype nat hook output priority -100; policy accept;",
              *dnat, "\t}",
              "\tchain postrouting {", "\t\ttype nat hook postrouting priority srcnat; policy accept;"]
    for cidr, snat_ip in sorted(want.snat):
        # A mapped VM leaves from its own EIP's address; every other VM from the vnet's.
        outside = f"ip saddr {cidr} ip daddr != {cidr}"
        lines += [f"\t\t{outside} snat ip to ip saddr map @vm_to_eip",
                  f"\t\t{outside} snat ip to {snat_ip}"]
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def _addr(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def read_back(nft_json: str) -> TableContent:
    """`nft -j list table ip onemetal` as TableContent (absent table: present=False)."""
    if not nft_json.strip():
        return TableContent(frozenset(), frozenset(), frozenset(), frozenset(), present=False)
    items = json.loads(nft_json)["nftables"]
    maps: dict[str, list[object]] = {}
    snat: set[tuple[str, str]] = set()
    for item in items:
        if "map" in item:
            maps[item["map"]["name"]] = item["map"].get("elem", [])
        rule = item.get("rule")
        if rule and rule.get("chain") == "postrouting":
            expr = rule["expr"]
            cidr = next((_prefix(e["match"]["right"]) for e in expr if "match" in e
                         and e["match"]["op"] == "=="), None)
            to = next((e["snat"]["addr"] for e in expr if "snat" in e), None)
            if cidr and isinstance(to, str):
                snat.add((cidr, to))

    def pairs(name: str) -> frozenset[tuple[str, str]]:
        return frozenset((_addr(k), _addr(v)) for k, v in maps.get(name, []))

    forwards = set()
    for key, value in maps.get("forwards", []):
        address, proto, port = key["concat"]
        vm_ip, vm_port = value["concat"]
        forwards.add((address, proto, int(port), vm_ip, int(vm_port)))
    return TableContent(pairs("eip_to_vm"), pairs("vm_to_eip"), frozenset(forwards),
                        frozenset(snat))


def _prefix(right: object) -> str | None:
    if isinstance(right, dict) and "prefix" in right:
        return f"{right['prefix']['addr']}/{right['prefix']['len']}"
    return None


def compare(want: TableContent, have: TableContent) -> list[str]:
    """The differences, as `onenat plan` prints them (empty: converged)."""
    if not have.present:
        return [f"+ table ip {TABLE} (absent on the gateway)"]
    out = []
    for name in ("eip_to_vm", "vm_to_eip", "forwards", "snat"):
        w, h = getattr(want, name), getattr(have, name)
        out += [f"+ {name} {' '.join(map(str, e))}" for e in sorted(w - h)]
        out += [f"- {name} {' '.join(map(str, e))}" for e in sorted(h - w)]
    return out
