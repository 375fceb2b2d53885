#!/usr/bin/env python3
"""deploy and cancel of the onemetal KVM driver next to libvirt itself, on one lab host.

A disk-less TCG domain (tests/data/vmm/deployment.0: one virtio NIC on the OVS bridge, VNC on
0.0.0.0) is created and destroyed `--rounds` times over SSH as oneadmin, four ways in the same
loop on the same libvirtd:
  onemetal   remotes/vmm/onemetal/deploy and cancel (the checks, the rewrite, the write-gate);
  direct     the same libvirt-python calls with nothing around them (open, lookupByName,
             createXML, UUIDString / lookupByUUIDString, destroy), in one interpreter each;
  virsh      `virsh create` of the rewritten file and `virsh destroy`;
  stock      OpenNebula's own kvm deploy and cancel scripts (src/vmm_mad/remotes/kvm, read from
             the git mirror --git) with the kvmrc and scripts_common.sh they source, laid out
             under the host's /var/tmp/one/stock as install.sh lays out /var/tmp/one; they need
             xmllint (libxml2-utils). The vgpu helper is left out (it would run as root through
             sudo): deploy's and cancel's `sudo /var/tmp/one/vgpu` calls fail, as they are allowed
             to, on a host without vGPUs.
It prints the median wall time of each, onemetal's overhead over direct (the driver's own work:
imports, checks, vm.xml, the gate) and the ratio to the stock scripts (or to virsh when the
mirror is not there).

    bench/vmm_deploy.py [--rounds N] [--git GIT_DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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
STOCK_FILE = f"{VM_DIR}/stock.xml"
MIRROR = "/work/.mirror/OpenNebula+one/repo"
STOCK = "/var/tmp/one/stock"
# mirror path -> where the scripts find it from vmm/kvm/ (install.sh's layout of the remotes)
STOCK_FILES = {"src/vmm_mad/remotes/kvm/deploy": "vmm/kvm/deploy",
               "src/vmm_mad/remotes/kvm/cancel": "vmm/kvm/cancel",
               "src/vmm_mad/remotes/kvm/kvmrc": "etc/vmm/kvm/kvmrc",
               "src/mad/sh/scripts_common.sh": "scripts_common.sh"}
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


def stock_scripts(git_dir: str) -> dict[str, str] | None:
    """{path under STOCK: text} of OpenNebula's kvm deploy and cancel, or None without a mirror."""
    if not os.path.isdir(git_dir):
        return None
    return {dest: subprocess.run(["git", "-C", git_dir, "show", f"HEAD:{source}"], check=True,
                                 capture_output=True, text=True, timeout=30).stdout
            for source, dest in STOCK_FILES.items()}


def _install_stock(ssh: Runner, scripts: dict[str, str]) -> None:
    for dest, text in scripts.items():
        path = f"{STOCK}/{dest}"
        ssh.run(["sh", "-c", f"mkdir -p {os.path.dirname(path)} && cat > {path} && chmod 755 {path}"],
                input=text)


def bench(rounds: int, git_dir: str = MIRROR) -> dict[str, dict[str, list[float]]]:
    with open(os.path.join(REPO, "tests", "data", "vmm", "deployment.0"), encoding="utf-8") as f:
        deployment = f.read()
    scripts = stock_scripts(git_dir)
    ways = ("onemetal", "direct", "virsh") + (("stock",) if scripts else ())
    times: dict[str, dict[str, list[float]]] = {w: {"deploy": [], "cancel": []} for w in ways}
    with installed_lab(2, mesh=HOSTS) as lab:
        host = lab.host("one-0")
        host.write_conf(HOST_CONF + '[storage]\nprofile = "none"\n')
        daemons = libvirt.start(host, lab.record)  # type: ignore[arg-type]
        print(f"libvirtd answered in {daemons.started_in:.2f} s")
        ssh = lab.ssh("one-0")
        ssh.run(["sh", "-c", f"mkdir -p {VM_DIR} && cat > {VM_DIR}/vm.xml"], input=VM_XML)
        if scripts:
            _install_stock(ssh, scripts)
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
                if scripts:  # the same rewritten file on stdin, as oned would send its own
                    with open(host.path(DIRECT), encoding="utf-8") as f:
                        rewritten = f.read()
                    ms, uuid = _timed(ssh, [f"{STOCK}/vmm/kvm/deploy", STOCK_FILE, "one-0", "7",
                                            "one-0"], rewritten)
                    if daemons.virsh("domuuid", "one-7").strip() != uuid:
                        raise SystemExit(f"the stock deploy printed {uuid!r}, not the UUID")
                    times["stock"]["deploy"].append(ms)
                    times["stock"]["cancel"].append(
                        _timed(ssh, [f"{STOCK}/vmm/kvm/cancel", uuid, "one-0", "7"])[0])
                    if daemons.virsh("list", "--all", "--name").split():
                        raise SystemExit("the stock cancel left the domain")
        finally:
            daemons.stop()
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--git", default=MIRROR, help="OpenNebula's git (a bare mirror is fine)")
    args = parser.parse_args(argv)
    times = bench(args.rounds, args.git)
    print(f"median of {args.rounds} rounds, wall time over SSH as oneadmin (ms):")
    if "stock" not in times:
        print(f"  (no OpenNebula git at {args.git}: the stock kvm scripts are not run)")
    for action in ("deploy", "cancel"):
        med = {w: statistics.median(t[action]) for w, t in times.items()}
        line = (f"  {action:6}  onemetal {med['onemetal']:7.1f}  direct {med['direct']:7.1f}  "
                f"virsh {med['virsh']:7.1f}  onemetal overhead {med['onemetal'] - med['direct']:6.1f}"
                f"  ratio onemetal/virsh {med['onemetal'] / med['virsh']:.2f}")
        if "stock" in med:
            line += (f"  stock {med['stock']:7.1f}  ratio onemetal/stock "
                     f"{med['onemetal'] / med['stock']:.2f}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
