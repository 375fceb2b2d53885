"""The gateway's nft table: rendering, reading back nft's JSON, and comparing the two (pure).

CAPTURED is `nft -j list table ip onemetal` (nftables 1.0.6) of render(STATE, FENCE) loaded into a
scratch network namespace; the other listings are it with one thing changed, as an operator
or a reboot would leave the table.
"""

from __future__ import annotations

import json

import pytest

from onemetal.errors import OneMetalError
from onemetal.nat.fence import Fence
from onemetal.nat.model import Address, Forward, Mapping, NatState, Vnet
from onemetal.nat.filters import pool_addresses, subnets
from onemetal.nat.render import compare, desired, map_size, read_back, render, settled_read

STATE = NatState(
    (Vnet(0, "192.168.0.0/24", "192.168.0.1", "10.0.0.41", 100),),
    (Address("3.3.3.2", "10.0.0.42", "aws"), Address("3.3.3.3", "10.0.0.43", "aws")),
    (Mapping("3.3.3.2", "10.0.0.42", 5, 0, "192.168.0.5", 0),
     Mapping("3.3.3.3", "10.0.0.43", 6, 0, "192.168.0.6", 0)),
    (Forward("10.0.0.41", 8080, "tcp", "192.168.0.7", 5007),))
FENCE = Fence(hosts=frozenset({"10.1.0.11", "10.1.0.12"}),
              blocked=frozenset({"169.254.0.0/16", "10.0.0.0/16"}),
              allowed=frozenset({("10.0.0.2", "udp", 53)}))

CAPTURED = (
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", '
    '"json_schema_version": 1}}, {"table": {"family": "ip", "name": "onemetal", "handle": 2}}, '
    '{"map": {"family": "ip", "name": "eip_to_vm", "table": "onemetal", "type": "ipv4_addr", '
    '"handle": 7, "map": "ipv4_addr", "size": 1024, "elem": [["10.0.0.42", "192.168.0.5"], '
    '["10.0.0.43", "192.168.0.6"]]}}, {"map": {"family": "ip", "name": "vm_to_eip", "table": '
    '"onemetal", "type": "ipv4_addr", "handle": 8, "map": "ipv4_addr", "size": 1024, "elem": '
    '[["192.168.0.5", "10.0.0.42"], ["192.168.0.6", "10.0.0.43"]]}}, {"map": {"family": "ip", '
    '"name": "forwards", "table": "onemetal", "type": ["ipv4_addr", "inet_proto", '
    '"inet_service"], "handle": 9, "map": "ipv4_addr . inet_service", "size": 1024, "elem": '
    '[[{"concat": ["10.0.0.41", "tcp", 8080]}, {"concat": ["192.168.0.7", 5007]}]]}}, {"set": '
    '{"family": "ip", "name": "pool", "table": "onemetal", "type": "ipv4_addr", "handle": 10, '
    '"size": 1024, "elem": ["10.0.0.42", "10.0.0.43"]}}, {"set": {"family": "ip", "name": '
    '"subnets", "table": "onemetal", "type": "ipv4_addr", "handle": 11, "flags": ["interval"], '
    '"elem": [{"prefix": {"addr": "192.168.0.0", "len": 24}}]}}, {"set": {"family": "ip", "name": '
    '"hosts", "table": "onemetal", "type": "ipv4_addr", "handle": 12, "size": 1024, "elem": '
    '["10.1.0.11", "10.1.0.12"]}}, {"set": {"family": "ip", "name": "blocked", "table": '
    '"onemetal", "type": "ipv4_addr", "handle": 13, "flags": ["interval"], "elem": [{"prefix": '
    '{"addr": "10.0.0.0", "len": 16}}, {"prefix": {"addr": "169.254.0.0", "len": 16}}]}}, {"set": '
    '{"family": "ip", "name": "allowed", "table": "onemetal", "type": ["ipv4_addr", "inet_proto", '
    '"inet_service"], "handle": 14, "size": 1024, "elem": [{"concat": ["10.0.0.2", "udp", '
    '53]}]}}, {"chain": {"family": "ip", "table": "onemetal", "name": "prerouting", "handle": 1, '
    '"type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}, {"chain": '
    '{"family": "ip", "table": "onemetal", "name": "output", "handle": 2, "type": "nat", "hook": '
    '"output", "prio": -100, "policy": "accept"}}, {"chain": {"family": "ip", "table": '
    '"onemetal", "name": "postrouting", "handle": 3, "type": "nat", "hook": "postrouting", '
    '"prio": 100, "policy": "accept"}}, {"chain": {"family": "ip", "table": "onemetal", "name": '
    '"rpfilter", "handle": 4, "type": "filter", "hook": "prerouting", "prio": -150, "policy": '
    '"accept"}}, {"chain": {"family": "ip", "table": "onemetal", "name": "input", "handle": 5, '
    '"type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": '
    '"ip", "table": "onemetal", "name": "forward", "handle": 6, "type": "filter", "hook": '
    '"forward", "prio": 0, "policy": "drop"}}, {"rule": {"family": "ip", "table": "onemetal", '
    '"chain": "prerouting", "handle": 15, "expr": [{"dnat": {"family": "ip", "addr": {"map": '
    '{"key": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": {"key": '
    '"l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "data": '
    '"@forwards"}}}}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": "prerouting", '
    '"handle": 16, "expr": [{"dnat": {"addr": {"map": {"key": {"payload": {"protocol": "ip", '
    '"field": "daddr"}}, "data": "@eip_to_vm"}}}}]}}, {"rule": {"family": "ip", "table": '
    '"onemetal", "chain": "output", "handle": 17, "expr": [{"dnat": {"family": "ip", "addr": '
    '{"map": {"key": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": '
    '{"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "data": '
    '"@forwards"}}}}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": "output", '
    '"handle": 18, "expr": [{"dnat": {"addr": {"map": {"key": {"payload": {"protocol": "ip", '
    '"field": "daddr"}}, "data": "@eip_to_vm"}}}}]}}, {"rule": {"family": "ip", "table": '
    '"onemetal", "chain": "postrouting", "handle": 19, "expr": [{"match": {"op": "==", "left": '
    '{"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": '
    '"192.168.0.0", "len": 24}}}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", '
    '"field": "daddr"}}, "right": {"prefix": {"addr": "192.168.0.0", "len": 24}}}}, {"snat": '
    '{"addr": {"map": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": '
    '"@vm_to_eip"}}}}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": "postrouting", '
    '"handle": 20, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", '
    '"field": "saddr"}}, "right": {"prefix": {"addr": "192.168.0.0", "len": 24}}}}, {"match": '
    '{"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": '
    '{"addr": "192.168.0.0", "len": 24}}}}, {"snat": {"addr": "10.0.0.41"}}]}}, {"rule": '
    '{"family": "ip", "table": "onemetal", "chain": "rpfilter", "handle": 21, "expr": [{"match": '
    '{"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "onegw*"}}, {"match": {"op": '
    '"==", "left": {"fib": {"result": "oif", "flags": ["saddr", "iif"]}}, "right": false}}, '
    '{"drop": null}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": "input", '
    '"handle": 22, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", '
    '"field": "daddr"}}, "right": "@pool"}}, {"reject": {"type": "tcp reset"}}]}}, {"rule": '
    '{"family": "ip", "table": "onemetal", "chain": "input", "handle": 23, "expr": [{"match": '
    '{"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@pool"}}, '
    '{"drop": null}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": "input", '
    '"handle": 24, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": '
    '"onegw*"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": '
    '["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": '
    '"onemetal", "chain": "input", "handle": 25, "expr": [{"match": {"op": "==", "left": {"meta": '
    '{"key": "iifname"}}, "right": "onegw*"}}, {"match": {"op": "==", "left": {"payload": '
    '{"protocol": "icmp", "field": "type"}}, "right": "echo-request"}}, {"accept": null}]}}, '
    '{"rule": {"family": "ip", "table": "onemetal", "chain": "input", "handle": 26, "expr": '
    '[{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "onegw*"}}, {"drop": '
    'null}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": "forward", "handle": 27, '
    '"expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", '
    '"related"]}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "onemetal", "chain": '
    '"forward", "handle": 28, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "status"}}, '
    '"right": "dnat"}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "onemetal", '
    '"chain": "forward", "handle": 29, "expr": [{"match": {"op": "==", "left": {"meta": {"key": '
    '"iifname"}}, "right": "onegw*"}}, {"match": {"op": "==", "left": {"payload": {"protocol": '
    '"ip", "field": "daddr"}}, "right": "@hosts"}}, {"drop": null}]}}, {"rule": {"family": "ip", '
    '"table": "onemetal", "chain": "forward", "handle": 30, "expr": [{"match": {"op": "==", '
    '"left": {"meta": {"key": "iifname"}}, "right": "onegw*"}}, {"match": {"op": "==", "left": '
    '{"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}}, {"drop": null}]}}, '
    '{"rule": {"family": "ip", "table": "onemetal", "chain": "forward", "handle": 31, "expr": '
    '[{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "onegw*"}}, {"match": '
    '{"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": '
    '"@subnets"}}, {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", '
    '"field": "daddr"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": '
    '"dport"}}]}, "right": "@allowed"}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": '
    '"onemetal", "chain": "forward", "handle": 32, "expr": [{"match": {"op": "==", "left": '
    '{"meta": {"key": "iifname"}}, "right": "onegw*"}}, {"match": {"op": "==", "left": '
    '{"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@blocked"}}, {"drop": null}]}}, '
    '{"rule": {"family": "ip", "table": "onemetal", "chain": "forward", "handle": 33, "expr": '
    '[{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "onegw*"}}, {"match": '
    '{"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": '
    '"@subnets"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": '
    '"daddr"}}, "right": "@subnets"}}, {"accept": null}]}}]}'
)


def listing(change=None) -> str:
    """CAPTURED, after change(items) edited its list of items in place."""
    data = json.loads(CAPTURED)
    if change:
        change(data["nftables"])
    return json.dumps(data)


def item(items: list, kind: str, name: str) -> dict:
    return next(i[kind] for i in items if kind in i and i[kind]["name"] == name)


def drop_rules(chain: str, positions: tuple[int, ...] = ()):
    """Remove the chain's rules at these positions (from 1; none given: all, a flush)."""
    def change(items: list) -> None:
        rules = [i for i in items if "rule" in i and i["rule"]["chain"] == chain]
        for number, rule in enumerate(rules, 1):
            if not positions or number in positions:
                items.remove(rule)
    return change


def differences(change=None) -> list[str]:
    return compare(desired(STATE, FENCE), read_back(listing(change)))


def test_captured_listing_reads_back_as_the_rendered_table():
    have = read_back(CAPTURED)
    assert compare(desired(STATE, FENCE), have) == []
    assert have == desired(STATE, FENCE) and have.duplicates == 0


def test_rendered_file_declares_sized_maps_and_the_rules_it_compares():
    text = render(STATE, FENCE)
    assert text.count("\t\tsize 1024\n") == 6  # three maps and the sets pool, hosts, allowed
    for chain in desired(STATE, FENCE).chains:
        written = [r.text for r in chain.rules]
        assert written and all(f"\t\t{line}\n" in text for line in written)


def test_flushed_dnat_chain_names_each_missing_rule():
    assert differences(drop_rules("prerouting")) == [
        "chain prerouting: rule 1 missing: "
        "dnat ip to ip daddr . meta l4proto . th dport map @forwards",
        "chain prerouting: rule 2 missing: dnat ip to ip daddr map @eip_to_vm"]


def test_deleted_rule_is_named_by_its_position():
    assert differences(drop_rules("postrouting", (2,))) == [
        "chain postrouting: rule 2 missing: ip saddr 192.168.0.0/24 ip daddr != 192.168.0.0/24 "
        "snat ip to 10.0.0.41"]


def test_rules_in_another_order_differ():
    def swap(items: list) -> None:
        first, second = [i["rule"] for i in items if "rule" in i and i["rule"]["chain"] == "output"]
        first["expr"], second["expr"] = second["expr"], first["expr"]
    assert differences(swap) != []


def test_changed_policy_and_priority_are_differences():
    def policy(items: list) -> None:
        item(items, "chain", "prerouting")["policy"] = "drop"
        item(items, "chain", "postrouting")["prio"] = 0
    assert differences(policy) == [
        "chain postrouting: type nat hook postrouting priority 0; policy accept; "
        "(want type nat hook postrouting priority 100; policy accept;)",
        "chain prerouting: type nat hook prerouting priority -100; policy drop; "
        "(want type nat hook prerouting priority -100; policy accept;)"]


def test_foreign_rule_and_chain_and_a_missing_chain_are_differences():
    def foreign(items: list) -> None:
        items.append({"rule": {"family": "ip", "table": "onemetal", "chain": "postrouting",
                               "handle": 20, "expr": [{"accept": None}]}})
        item(items, "chain", "output")["name"] = "other"
    assert differences(foreign) == [
        "chain other: not ours", "chain output: missing",
        'chain postrouting: rule 3 is not ours: [{"accept":null}]']


def test_missing_element_and_wrong_map_size_are_differences():
    def change(items: list) -> None:
        eip_to_vm = item(items, "map", "eip_to_vm")
        eip_to_vm["elem"].pop()
        eip_to_vm["size"] = 2
    assert differences(change) == [
        "map eip_to_vm: type ipv4_addr : ipv4_addr size 2 "
        "(want type ipv4_addr : ipv4_addr size 1024)",
        "+ eip_to_vm 10.0.0.43 192.168.0.6"]


def test_absent_table_is_one_difference():
    assert compare(desired(STATE, FENCE), read_back("")) == [
        "+ table ip onemetal (absent on the gateway)"]


def test_a_listed_twice_element_is_counted_but_not_a_difference():
    def twice(items: list) -> None:
        elements = item(items, "map", "vm_to_eip")["elem"]
        elements.append(elements[0])
    have = read_back(listing(twice))
    assert have.duplicates == 1 and have == desired(STATE, FENCE)


@pytest.mark.parametrize("count,size", [(0, 1024), (100, 1024), (1000, 2048), (10_000, 16_384),
                                        (100_000, 131_072), (104_857, 131_072), (104_858, 262_144)])
def test_map_size_leaves_a_quarter_of_headroom_in_powers_of_two(count, size):
    assert map_size(count) == size
    assert map_size(count) >= count * 1.25


def reads_of(*texts: str):
    """A read function returning these listings in turn, and the pauses it was asked for."""
    queue, pauses = list(texts), []
    return (lambda: queue.pop(0)), pauses


def test_settled_read_takes_the_first_two_equal_listings():
    read, pauses = reads_of(CAPTURED, CAPTURED, "never read")
    assert settled_read(read, sleep=pauses.append) == (read_back(CAPTURED), 2)
    assert pauses == [0.2]


def test_settled_read_reads_again_after_a_changing_or_duplicated_listing():
    doubled = listing(lambda items: item(items, "map", "eip_to_vm")["elem"].append(
        ["10.0.0.42", "192.168.0.5"]))
    short = listing(lambda items: item(items, "map", "eip_to_vm")["elem"].pop())
    read, pauses = reads_of(short, doubled, doubled, CAPTURED, CAPTURED)
    content, count = settled_read(read, sleep=pauses.append)
    assert count == 5 and compare(desired(STATE, FENCE), content) == []


def test_settled_read_gives_up_after_five_reads_that_never_agree():
    texts = [listing(lambda items, n=n: item(items, "map", "forwards").update(size=n))
             for n in range(6)]
    read, pauses = reads_of(*texts)
    with pytest.raises(OneMetalError, match="did not list the same twice in a row in 5 reads"):
        settled_read(read, sleep=pauses.append)
    assert len(pauses) == 4


def test_a_deleted_filter_rule_and_an_opened_forward_policy_are_differences():
    def opened(items: list) -> None:
        item(items, "chain", "forward")["policy"] = "accept"
    assert differences(drop_rules("input", (2,))) == [
        "chain input: rule 2 missing: ip daddr @pool drop"]
    assert differences(opened) == [
        "chain forward: type filter hook forward priority 0; policy accept; "
        "(want type filter hook forward priority 0; policy drop;)"]


def test_set_elements_and_declarations_are_differences():
    def change(items: list) -> None:
        item(items, "set", "pool")["elem"].remove("10.0.0.43")
        item(items, "set", "subnets")["elem"].append("10.9.9.9")
        items.remove({"set": item(items, "set", "subnets")})
    assert differences(change) == ["set subnets: missing", "+ pool 10.0.0.43",
                                   "+ subnets 192.168.0.0/24"]

    def resized(items: list) -> None:
        item(items, "set", "pool")["size"] = 4
        item(items, "set", "subnets")["elem"].append("10.9.9.9")
    assert differences(resized) == [
        "set pool: type ipv4_addr size 4 (want type ipv4_addr size 1024)",
        "- subnets 10.9.9.9/32"]


def test_pool_leaves_out_the_snat_address_and_subnets_merge_what_touches():
    state = NatState(
        (Vnet(0, "192.168.0.0/24", "192.168.0.1", "10.0.0.41", 100),
         Vnet(1, "192.168.1.0/24", "192.168.1.1", "10.0.0.41", 101),
         Vnet(2, "10.8.0.0/16", "10.8.0.1", "10.0.0.41", 102),
         Vnet(3, "10.8.4.0/24", "10.8.4.1", "10.0.0.41", 103)),
        (Address("3.3.3.1", "10.0.0.41", "aws"), Address("3.3.3.2", "10.0.0.42", "aws")), (), ())
    assert pool_addresses(state) == {"10.0.0.42"}
    assert subnets(state) == {"192.168.0.0/23", "10.8.0.0/16"}
    assert "elements = { 10.8.0.0/16, 192.168.0.0/23 }" in render(state)


def test_every_filter_chain_is_rendered_with_its_hook_and_policy():
    heads = {c.name: c.head() for c in desired(STATE, FENCE).chains if c.type == "filter"}
    assert heads == {"rpfilter": "type filter hook prerouting priority -150; policy accept;",
                     "input": "type filter hook input priority 0; policy accept;",
                     "forward": "type filter hook forward priority 0; policy drop;"}
