#!/usr/bin/env python3
"""Mesh sync on one host with 100 peers: one OVSDB transaction, and no write when nothing changed.

In one run, on a lab host (real ovsdb-server and ovs-vswitchd, userspace datapath):
  full:    `mesh-peers` with a pushed pool of 101 hosts, from an empty mesh (100 tunnel ports)
  again:   the same pool again (nothing to change)
  one:     the pool with one peer replaced (one port out, one in)
Each runs the host entry as the frontend's SSH command would (minus SSH), and counts the
write transactions ovs-vsctl committed by reading the database's log (ovs-vsctl records
its command line as each transaction's comment). Prints times, transaction counts, and
the ratios of the no-change and one-change runs to the full one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import installed_lab  # noqa: E402

from onemetal.lab import samples  # noqa: E402

PEERS = 100


def pool(lab, replace_last: bool = False) -> str:
    hosts = [(0, "one-0", lab.hosts[0].address)]
    for i in range(1, PEERS + 1):
        last = replace_last and i == PEERS
        hosts.append((i, f"peer-{i}" if not last else "peer-new",
                      f"10.99.{i // 250}.{i % 250 + 1}" if not last else "10.98.0.1"))
    return samples.b64(samples.host_pool_xml(hosts))


def vsctl_transactions(db: str) -> int:
    log = subprocess.run(["ovsdb-tool", "show-log", "-m", db], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return sum(1 for line in log.splitlines() if line.startswith("record ") and '"ovs-vsctl' in line)


def run(lab, payload: str) -> tuple[float, int, str]:
    host = lab.hosts[0]
    db = os.path.join(host.workdir, "conf.db")
    before = vsctl_transactions(db)
    start = time.perf_counter()
    out = host.run(["/usr/bin/python3", "/var/tmp/one/onemetal/call", "mesh-peers", "one-0"],
                   input=payload, timeout=120).stdout
    seconds = time.perf_counter() - start
    return seconds, vsctl_transactions(db) - before, out.splitlines()[0]


def main() -> int:
    with installed_lab(1) as lab:
        full = run(lab, pool(lab))
        ports = [p for p in lab.hosts[0].vsctl("list-ports", "br-mesh").split() if p.startswith("vx")]
        again = run(lab, pool(lab))
        one = run(lab, pool(lab, replace_last=True))
    rows = [("full (100 ports added)", full), ("again (no change)", again),
            ("one peer replaced", one)]
    print(f"mesh sync on one host, {PEERS} peers, {len(ports)} tunnel ports after the first run")
    for name, (seconds, transactions, summary) in rows:
        print(f"  {name:24} {seconds * 1000:8.1f} ms  {transactions} OVSDB write transaction(s)  "
              f"[{summary}]")
    print(f"ratio no-change / full: {again[0] / full[0]:.2f}   one-change / full: {one[0] / full[0]:.2f}")
    ok = len(ports) == PEERS and full[1] == 1 and again[1] == 0 and one[1] == 1
    print("goal (100 ports in 1 transaction, no write without change):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
