"""The gateway's filter chains: what it forwards, what reaches the host itself, reverse paths (pure).

The rules are the same for every store; only two sets change, so a packet costs one
lookup per set whatever the number of vnets or addresses:
  subnets  the NATed vnets' subnets (an interval set);
  pool     the pools' private secondary addresses, minus the vnets' SNAT addresses
           (the host's own primary address is never dropped: SSH may come in on it).
Chains:
  rpfilter (prerouting, before DNAT) strict reverse path on the gateway ports: a
           packet from onegw<N> must come from an address routed back through onegw<N>,
           so a VM cannot pose as another vnet or as the outside;
  input    the pool addresses reach nothing on the host (a mapped one is DNATed before
           input, an unmapped one and a forward's other ports end here): TCP is reset,
           the rest dropped; from the gateway ports only replies and ping reach the host;
  forward  policy drop: replies pass; new connections only from a vnet's subnet on a
           gateway port to an address outside every vnet and not fenced off (the sets
           `hosts`, `blocked`, `allowed` and the VXLAN port of nat/fence.py), or in
           through a mapping or a port forward (conntrack saw our DNAT). Nothing passes
           between two vnets.
"""

from __future__ import annotations

import ipaddress

from onemetal.nat.fence import Fence
from onemetal.nat.model import NatState
from onemetal.nat.nftjson import Chain, Rule, match, payload, rule, verdict

# Every vnet's gateway port is this prefix and its vnet id (nat/apply.py gateway_port).
GATEWAY_PORT_PREFIX = "onegw"
_PORTS = f'iifname "{GATEWAY_PORT_PREFIX}*"'
_FROM_PORT = match({"meta": {"key": "iifname"}}, f"{GATEWAY_PORT_PREFIX}*")
_REPLIES = match({"ct": {"key": "state"}}, ["established", "related"], "in")


def pool_addresses(state: NatState) -> frozenset[str]:
    snat = {v.snat_ip for v in state.vnets}
    return frozenset(a.private_ip for a in state.addresses if a.private_ip not in snat)


def subnets(state: NatState) -> frozenset[str]:
    """The vnets' subnets, merged where they touch or overlap: an interval set refuses
    overlapping elements, and nft lists each merged interval as one prefix."""
    networks = [ipaddress.IPv4Network(v.subnet) for v in state.vnets]
    return frozenset(str(n) for n in ipaddress.collapse_addresses(networks))


_RPFILTER = (rule(f"{_PORTS} fib saddr . iif oif missing drop", _FROM_PORT,
                  match({"fib": {"result": "oif", "flags": ["saddr", "iif"]}}, False),
                  verdict("drop")),)
_TO_POOL = match(payload("ip", "daddr"), "@pool")
# TCP gets a reset, as the kernel answered before the filter: an open flow of a retired
# mapping ends at once on the client instead of hanging; nothing else gets an answer.
# (nft adds the rule's `meta l4proto tcp` itself and leaves it out of the listing.)
_INPUT = (rule("ip daddr @pool reject with tcp reset", _TO_POOL, {"reject": {"type": "tcp reset"}}),
          rule("ip daddr @pool drop", _TO_POOL, verdict("drop")),
          rule(f"{_PORTS} ct state established,related accept", _FROM_PORT, _REPLIES,
               verdict("accept")),
          rule(f"{_PORTS} icmp type echo-request accept", _FROM_PORT,
               match(payload("icmp", "type"), "echo-request"), verdict("accept")),
          rule(f"{_PORTS} drop", _FROM_PORT, verdict("drop")))
_FROM_SUBNETS = match(payload("ip", "saddr"), "@subnets")
_SERVICE = {"concat": [payload("ip", "daddr"), {"meta": {"key": "l4proto"}},
                       payload("th", "dport")]}


def _forward(fence: Fence) -> tuple[Rule, ...]:
    """Fenced-off destinations are dropped before the one accept of new connections;
    `allowed` only lifts `blocked`, never `hosts` or the VXLAN port."""
    vxlan = fence.vxlan_port
    return (rule("ct state established,related accept", _REPLIES, verdict("accept")),
            rule("ct status dnat accept", match({"ct": {"key": "status"}}, "dnat", "in"),
                 verdict("accept")),
            rule(f"{_PORTS} ip daddr @hosts drop", _FROM_PORT,
                 match(payload("ip", "daddr"), "@hosts"), verdict("drop")),
            rule(f"{_PORTS} udp dport {vxlan} drop", _FROM_PORT,
                 match(payload("udp", "dport"), vxlan), verdict("drop")),
            rule(f"{_PORTS} ip saddr @subnets ip daddr . meta l4proto . th dport @allowed accept",
                 _FROM_PORT, _FROM_SUBNETS, match(_SERVICE, "@allowed"), verdict("accept")),
            rule(f"{_PORTS} ip daddr @blocked drop", _FROM_PORT,
                 match(payload("ip", "daddr"), "@blocked"), verdict("drop")),
            rule(f"{_PORTS} ip saddr @subnets ip daddr != @subnets accept", _FROM_PORT,
                 _FROM_SUBNETS, match(payload("ip", "daddr"), "@subnets", "!="),
                 verdict("accept")))


def filter_chains(fence: Fence) -> tuple[Chain, ...]:
    """In the order render writes them; priorities as nft lists them (mangle is -150)."""
    rules: tuple[tuple[str, str, int, str, tuple[Rule, ...]], ...] = (
        ("rpfilter", "prerouting", -150, "accept", _RPFILTER),
        ("input", "input", 0, "accept", _INPUT),
        ("forward", "forward", 0, "drop", _forward(fence)))
    return tuple(Chain(name, "filter", hook, prio, policy, chain_rules)
                 for name, hook, prio, policy, chain_rules in rules)
