#!/usr/bin/env python3
"""deploy and cancel of the onemetal KVM driver next to libvirt itself, on one lab host.

A disk-less TCG domain (tests/data/vmm/deployment.0: one virtio NIC on the OVS bridge, VNC on
0.0.0.0) is created and destroyed `--rounds` times over SSH as oneadmin, three ways in the same
loop on the same libvirtd:
  onemetal   remotes/vmm/onemetal/deploy and cancel (the checks, the rewrite, the write-gate);
  direct     the same libvirt-python calls with nothing around them (open, lookupByName,
             createXML, UUIDString / lookupByUUIDString, destroy), in one interpreter each;
  virsh      `virsh create` of the rewritten file and `virsh destroy`.
It prints the median wall time of each and onemetal's overhead over direct (the driver's own work:
imports, checks, vm.xml, the gate). OpenNebula's stock kvm deploy is not run: it needs
kvmrc, scripts_common.sh, xmllint and vgpu helpers that a lab host does not have.

    bench/vmm_deploy.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import installed_lab  # noqa: E402

from onemetal.lab import libvirt  # noqa: E402
from onemetal.lab.lab import HOST_CONF  # noqa: E402
from onemetal.lab.samples import SampleNic, vnm_vm_xml  # noqa: E402
from onemetal.run import Runner  # noqa: E402

HOSTS = ["one-0", "one-1"]
VMM = "/var/tmp/one/vmm/onemetal"
VM_DIR = "/var/lib/one/datastores/0/7"
DFILE = f"{VM_DIR}/deployment.0"
DIRECT = f"{VM_DIR}/direct.xml"
VM_XML = vnm_vm_xml(7, "one-0", [SampleNic(0, "10.0.7.1", "02:00:0a:00:07:01", mtu=None)])
_DIRECT = """\
import libvirt, sys
conn = libvirt.open('qemu:///system')
if sys.argv[1] == 'create':
    try:
        conn.lookupByName('one-7')
    except libvirt.libvirtError:
        print(conn.createXML(open(sys.argv[2]).read(), 0).UUIDString())
else:
    conn.lookupByUUIDString(sys.argv[2]).destroy()
"""


def _timed(run: Runner, argv: list[str], input: str = "") -> tuple[float, str]:
    begin = time.perf_counter()
    result = run.run(argv, input=input, timeout=120)
    return (time.perf_counter() - begin) * 1000, result.stdout.strip()


def bench(rounds: int) -> dict[str, dict[str, list[float]]]:
    with open(os.path.join(REPO, "tests", "data", "vmm", "deployment.0"), encoding="utf-8") as f:
        deployment = f.read()
    times: dict[str, dict[str, list[float]]] = {w: {"deploy": [], "cancel": []}
                                               for w in ("onemetal", "direct", "virsh")}
    with installed_lab(2, mesh=HOSTS) as lab:
        host = lab.host("one-0")
        host.write_conf(HOST_CONF + '[storage]\nprofile = "none"\n')
        daemons = libvirt.start(host, lab.record)  # type: ignore[arg-type]
        print(f"libvirtd answered in {daemons.started_in:.2f} s")
        ssh = lab.ssh("one-0")
        ssh.run(["sh", "-c", f"mkdir -p {VM_DIR} && cat > {VM_DIR}/vm.xml"], input=VM_XML)
        try:
            for _ in range(rounds):
                ms, uuid = _timed(ssh, [f"{VMM}/deploy", DFILE, "one-0", "7", "one-0"], deployment)
                times["onemetal"]["deploy"].append(ms)
                times["onemetal"]["cancel"].append(_timed(ssh, [f"{VMM}/cancel", uuid, "one-0"])[0])
                ssh.run(["cp", DFILE, DIRECT])  # what libvirt got from onemetal, for both others
                ms, uuid = _timed(ssh, ["/usr/bin/python3", "-c", _DIRECT, "create", DIRECT])
                times["direct"]["deploy"].append(ms)
                times["direct"]["cancel"].append(
                    _timed(ssh, ["/usr/bin/python3", "-c", _DIRECT, "destroy", uuid])[0])
                times["virsh"]["deploy"].append(
                    _timed(ssh, ["virsh", "-c", libvirt.URI, "create", DIRECT])[0])
                times["virsh"]["cancel"].append(
                    _timed(ssh, ["virsh", "-c", libvirt.URI, "destroy", "one-7"])[0])
        finally:
            daemons.stop()
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    times = bench(args.rounds)
    print(f"median of {args.rounds} rounds, wall time over SSH as oneadmin (ms):")
    for action in ("deploy", "cancel"):
        med = {w: statistics.median(t[action]) for w, t in times.items()}
        print(f"  {action:6}  onemetal {med['onemetal']:7.1f}  direct {med['direct']:7.1f}  "
              f"virsh {med['virsh']:7.1f}  onemetal overhead {med['onemetal'] - med['direct']:6.1f}"
              f"  ratio onemetal/virsh {med['onemetal'] / med['virsh']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
