#!/usr/bin/env python3
"""The external commands each VNM action runs on a lab host, and whether a no-change post writes.

pre (the tap does not exist yet), post (after the "hypervisor" plugged it), post again
(nothing to change) and clean (the tap still plugged) of one filtered VM, each a step of
oned's SSH stream as oneadmin (sudo -n for root), on a 2-host mesh with a neighbour
VM on the bridge, traced with strace on the host's sshd (onemetal.lab.exec_trace).
Prints per action: the commands the driver ran, the processes they made (sudo and
its tool are two), the OVSDB records written (ovsdb-tool show-log) and the bytes on
stdout and stderr. Run from a checkout to compare two versions.
"""

from __future__ import annotations

import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import installed_lab  # noqa: E402

from onemetal.lab import drive  # noqa: E402
from onemetal.lab.exec_trace import traced  # noqa: E402
from onemetal.lab.samples import SampleNic, sg_rule_xml, vnm_vm_xml  # noqa: E402

HOST = "one-0"


def ovsdb_records(lab) -> int:
    host = lab.host(HOST)
    log = host.run(["ovsdb-tool", "show-log", os.path.join(host.workdir, "conf.db")]).stdout
    return sum(line.startswith("record ") for line in log.splitlines())


def short(argv: tuple[str, ...]) -> str:
    words = [w for w in argv if w not in ("sudo", "-n") and not w.startswith("--timeout")]
    return " ".join(words)[:110]


def main() -> int:
    nic = SampleNic(0, "192.168.0.77", "02:00:c0:a8:00:4d", security_groups="3")
    rules = sg_rule_xml(3, "TCP", "inbound", range="22,80:90") + sg_rule_xml(3, "ALL", "outbound")
    xml = vnm_vm_xml(77, HOST, [nic], rules=rules)
    steps = [("pre", "pre", []), ("post", "post", ["deploy-77", HOST]),
             ("post again", "post", ["deploy-77", HOST]), ("clean", "clean", [HOST])]
    with installed_lab(2, mesh=[HOST, "one-1"]) as lab:
        drive.deploy(lab, HOST, 78, [SampleNic(0, "192.168.0.78", "02:00:c0:a8:00:4e")])
        print(f"{'action':11} {'commands':>8} {'processes':>9} {'ovsdb records':>13} "
              f"{'stdout':>6} {'stderr':>6}")
        listing = []
        for label, action, args in steps:
            if action == "post" and label == "post":
                lab.add_vm(HOST, "vm77", "br-mesh", "192.168.0.77/24", mac=nic.mac, port="one-77-0")
            before = ovsdb_records(lab)
            with traced(lab.host(HOST), lab.workdir) as trace:
                result = drive.check(drive.vnm(lab, HOST, action, args, xml), label)
            script = f"/{action}"
            commands, processes = trace.commands(script), trace.processes(script)
            print(f"{label:11} {len(commands):8} {len(processes):9} "
                  f"{ovsdb_records(lab) - before:13} {len(result.stdout):6} "
                  f"{len(result.stderr):6}")
            listing += [f"{label}: {short(c)}" for c in commands]
        print("\n".join(listing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
