#!/usr/bin/env python3
"""VNM action times on a lab host: pre, post and clean of one filtered VM, median of RUNS each.

Each action runs as oned runs it (a step of the SSH stream, as oneadmin, sudo -n for root),
on a 2-host mesh with a neighbour VM on the bridge. The VM has one NIC with a security group
rule (a filtered port: conntrack zone, anti-spoofing flows). The tap stays plugged between runs,
so post re-adds the port that clean removed. Prints the medians (and min/max) in ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import installed_lab  # noqa: E402

from onemetal.lab import drive  # noqa: E402
from onemetal.lab.samples import SampleNic, sg_rule_xml, vnm_vm_xml  # noqa: E402

RUNS = int(os.environ.get("RUNS", "10"))
HOSTS = ["one-0", "one-1"]


def timed(lab, action: str, args: list[str], xml: str) -> float:
    start = time.perf_counter()
    drive.check(drive.vnm(lab, "one-0", action, args, xml), action)
    return time.perf_counter() - start


def main() -> int:
    nic = SampleNic(0, "192.168.0.77", "02:00:c0:a8:00:4d", security_groups="3")
    rules = sg_rule_xml(3, "TCP", "inbound", range="22,80:90") + sg_rule_xml(3, "ALL", "outbound")
    xml = vnm_vm_xml(77, "one-0", [nic], rules=rules)
    times: dict[str, list[float]] = {"pre": [], "post": [], "clean": []}
    with installed_lab(2, mesh=HOSTS) as lab:
        drive.deploy(lab, "one-0", 78, [SampleNic(0, "192.168.0.78", "02:00:c0:a8:00:4e")])
        lab.add_vm("one-0", "vm77", "br-mesh", "192.168.0.77/24", mac=nic.mac, port="one-77-0")
        for _ in range(RUNS):
            times["pre"].append(timed(lab, "pre", [], xml))
            times["post"].append(timed(lab, "post", ["deploy-77", "one-0"], xml))
            times["clean"].append(timed(lab, "clean", ["one-0"], xml))
    print(f"VNM actions on one lab host, {RUNS} runs each (ms: median [min..max])")
    for action, values in times.items():
        print(f"  {action:6} {statistics.median(values) * 1000:7.1f}  "
              f"[{min(values) * 1000:.1f}..{max(values) * 1000:.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
