#!/usr/bin/env python3
"""NAT at scale: apply time of the gateway's table, and the cost per connection of more mappings.

In one run, in namespaces this script creates and removes:
  apply:  the table rendered from N mappings (N = 100, 1k, 10k, 100k) loaded with one `nft -f`
          into a gateway namespace that already holds the previous table (a real replace),
          then read back (`nft -j list table` until two reads in a row agree) and compared,
          as `onenat sync` does;
  rate:   TCP connections per second from a client through the gateway's DNAT to a server
          ("the VM"), with 1 mapping and with 10k mappings (the target one among them),
          alternating rounds, medians compared. The table has its filters: the DNAT passes
          the forward chain, the VM's side is a gateway port (onegw0), so its replies go
          through the reverse-path check, and every secondary address is in the set pool.
Goals: 10k mappings applied in under 1 s; rate(10k) / rate(1) >= 0.95.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import statistics
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))

from onemetal.lab import netns  # noqa: E402
from onemetal.nat.model import Address, Mapping, NatState, Vnet  # noqa: E402
from onemetal.nat.render import compare, desired, render, settled_read  # noqa: E402

SIZES = (100, 1_000, 10_000, 100_000)
ROUNDS = 5
CONNECTIONS = 400
VNET = Vnet(0, "192.168.0.0/16", "192.168.0.1", "10.0.0.41", 100)

_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5000)); s.listen(1024)
while True:
    c, _ = s.accept(); c.close()
"""
_CLIENT = """
import socket, sys, time
n = int(sys.argv[2]); start = time.perf_counter()
for _ in range(n):
    c = socket.create_connection((sys.argv[1], 5000), timeout=5)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
    c.recv(1); c.close()
print(n / (time.perf_counter() - start))
"""


def state(n: int) -> NatState:
    """n mappings; the first one maps 10.1.0.0 to the server 192.168.0.2."""
    private = ipaddress.IPv4Address("10.1.0.0")
    vm = ipaddress.IPv4Address("192.168.0.2")
    addresses, mappings = [], []
    for i in range(n):
        p, v, e = str(private + i), str(vm + i), str(ipaddress.IPv4Address("100.64.0.0") + i)
        addresses.append(Address(e, p, "bench"))
        mappings.append(Mapping(e, p, i, 0, v, 0))
    return NatState((VNET,), tuple(addresses), tuple(mappings), ())


def apply_times(gw) -> list[tuple[int, float, float, int]]:
    """(mappings, apply s, read back + compare s, reads) per size."""
    out = []
    for n in SIZES:
        st = state(n)
        text = render(st)
        start = time.perf_counter()
        gw.run(["nft", "-f", "-"], input=text, timeout=120)
        applied = time.perf_counter() - start
        start = time.perf_counter()
        have, reads = settled_read(
            lambda: gw.run(["nft", "-j", "list", "table", "ip", "onemetal"], timeout=120).stdout)
        differences = compare(desired(st), have)
        checked = time.perf_counter() - start
        if differences:
            sys.exit(f"read back of {n} mappings differs: {'; '.join(differences[:5])}")
        out.append((n, applied, checked, reads))
    return out


def rate(client, gw, n: int) -> float:
    gw.run(["nft", "-f", "-"], input=render(state(n)), timeout=120)
    gw.run(["conntrack", "-F"], check=False)
    return float(client.run(["python3", "-c", _CLIENT, "10.1.0.0", str(CONNECTIONS)],
                            timeout=120).stdout)


def main() -> int:
    token = secrets.token_hex(3)
    names = {role: f"omlb{token}-{role}" for role in ("cl", "gw", "vm")}
    procs = []
    try:
        for name in names.values():
            netns.add(name)
        netns.veth(names["cl"], "eth0", names["gw"], "ens5", 1500)
        netns.veth(names["vm"], "eth0", names["gw"], "onegw0", 1500)
        cl, gw, vm = (netns.in_netns(names[r]) for r in ("cl", "gw", "vm"))
        cl.run(["ip", "addr", "add", "10.0.0.100/8", "dev", "eth0"])
        gw.run(["ip", "addr", "add", "10.0.0.41/8", "dev", "ens5"])
        gw.run(["ip", "addr", "add", "192.168.0.1/16", "dev", "onegw0"])
        gw.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        vm.run(["ip", "addr", "add", "192.168.0.2/16", "dev", "eth0"])
        vm.run(["ip", "route", "add", "default", "via", "192.168.0.1"])
        # The client reaches every private address through the gateway (the provider's 1:1 NAT).
        cl.run(["ip", "route", "add", "10.1.0.0/16", "via", "10.0.0.41"])
        procs.append(vm.spawn(["python3", "-c", _SERVER], "/dev/null"))
        time.sleep(0.5)

        print("apply (one nft -f replacing the table) and read back + compare:")
        applied = apply_times(gw)
        for n, apply_s, checked, reads in applied:
            print(f"  {n:>7} mappings: apply {apply_s * 1000:8.1f} ms   "
                  f"read back {checked * 1000:8.1f} ms   ({reads} reads, equal)")
        ten_k = next(a for n, a, _, _ in applied if n == 10_000)
        few, many = [], []
        for _ in range(ROUNDS):
            few.append(rate(cl, gw, 1))
            many.append(rate(cl, gw, 10_000))
        r1, r10k = statistics.median(few), statistics.median(many)
        print(f"TCP connections/s through the gateway (median of {ROUNDS} rounds of {CONNECTIONS}):")
        print(f"  1 mapping: {r1:8.0f}/s   10k mappings: {r10k:8.0f}/s   ratio 10k/1: {r10k / r1:.3f}")
        print(f"goal 10k applied < 1 s: {'met' if ten_k < 1 else 'NOT met'} ({ten_k * 1000:.0f} ms); "
              f"goal ratio >= 0.95: {'met' if r10k / r1 >= 0.95 else 'NOT met'}")
        return 0
    finally:
        for p in procs:
            p.kill()
            p.wait(5)
        for name in names.values():
            netns.delete(name)


if __name__ == "__main__":
    sys.exit(main())
