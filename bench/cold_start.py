#!/usr/bin/env python3
"""Cold start of every host entry point, as oned pays it on every action, against a bare interpreter.

For each entry of onemetal.hostcall.ENTRIES (run the way oned runs it: the VNM actions
through their links in remotes/vnm/ovswitch_vxlan_unicast/, the others through
remotes/onemetal/call) and for the monitoring probe, with a realistic stdin from
onemetal.lab.samples (describe-vm: a VM document of about 50 KB), this measures the
median wall time of `/usr/bin/python3 -I <script> ...` and, in the same run and
interleaved with them, of `/usr/bin/python3 -c pass`, and prints both in ms and
their ratio. Goal: every entry at most 2.5x the bare interpreter. The KVM driver's entries
(vmm-*) cannot start before libvirt-python is imported: `/usr/bin/python3 -I -c 'import
libvirt'`, in the same loop, is their floor, and their goal at most 1.5x it.

Entries that need a host (OVS, sudo) are measured up to their first external command:
the environment sets ONEMETAL_BENCH_STOP_BEFORE_RUN=1, which makes onemetal.run end
the process (exit 97, with os._exit: no interpreter teardown is timed) right before
it would start that command (benchmark only; see run.py). An entry that runs no command (describe-vm, vnet_create) is timed to its
end, teardown included; post, which needs the VM's taps, to the check that refuses
it here (the last step before the host lock and the first command). The configuration is a temporary onemetal.conf whose state_dir is a temporary
directory (and net.underlay_mtu = 1500), so nothing outside it is read or written;
nat-apply runs with --dry-run.
The storage entries (bench/cold_start_samples.py) run through their driver's links
(remotes/datastore/onemetal, remotes/tm/onemetal) or, for a transfer's host side, through
call, on a datastores_dir in that directory with the write-gate's profile "none"; those that
run no command (monitor, rm, ...) change files only there, put back before every run;
the KVM driver's (vmm-*) through remotes/vmm/onemetal, on libvirt's test driver.

    bench/cold_start.py [--runs N] [--only ENTRY ...] [--tree DIR]

--tree measures the remotes of another checkout (a worktree of an older commit, for
a before/after comparison); that tree's onemetal.run must know the stop variable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [os.path.join(REPO, "drivers"), os.path.dirname(os.path.abspath(__file__))]  # -I

from onemetal import hostcall  # noqa: E402
from onemetal.lab import samples  # noqa: E402
from onemetal.run import BENCH_STOP, BENCH_STOP_CODE  # noqa: E402

import cold_start_samples as storage  # noqa: E402

PYTHON = "/usr/bin/python3"
# post needs the VM's taps, which only a host running the VM has: it is timed up to that check.
NO_TAP = "/TARGET: device one-42-0 does not exist on this host"
# libvirt's test driver cannot restore with another XML, restore's last call.
NO_XML_RESTORE = "restore: argument unsupported: xml modification unsupported"
# The hot-plug, snapshot and migrate samples reach libvirt's test driver, which has no one-42.
NO_DOMAIN = ("one-42: no such domain", "one-42: no running domain on test:///default",
             "one-42: connect to qemu+ssh://127.0.0.1/system")
UNSUPPORTED = "not supported by onemetal"
GOAL = 2.5
# The KVM driver's entries cannot start faster than libvirt-python imports: measured beside them.
LIBVIRT_FLOOR = [PYTHON, "-I", "-c", "import libvirt"]
VMM_GOAL = 1.5
CALL = ("remotes", "onemetal", "call")
VNM = ("remotes", "vnm", "ovswitch_vxlan_unicast")
PROBE = ("remotes", "im", "kvm-probes.d", "host", "system", "onemetal_mesh")
DS = ("remotes", "datastore", "onemetal")
TM = ("remotes", "tm", "onemetal")
VMM = ("remotes", "vmm", "onemetal")
# Where cases() without a directory puts the samples' files (only the entries' names are used then)
NO_TMP = os.path.join(tempfile.gettempdir(), "onemetal-bench")


def _vm_payload() -> str:
    nics = [samples.SampleNic(i, f"192.168.0.{10 + i}", f"02:00:c0:a8:00:{10 + i:02x}") for i in range(2)]
    rules = samples.sg_rule_xml(0, "TCP", "inbound", range="22,80:90") + \
        samples.sg_rule_xml(0, "ALL", "outbound")
    return samples.b64(samples.vnm_vm_xml(42, "one-1", nics, rules=rules)) + "\n"


def _nat_state() -> str:
    """A gateway's state as `onenat` pushes it (nat/gateway.py): one vnet, 20 EIPs, 10 mapped."""
    addresses = [{"eip": f"3.0.0.{i}", "private_ip": f"10.0.0.{50 + i}", "pool": "aws"}
                 for i in range(1, 21)]
    mappings = [{"eip": a["eip"], "private_ip": a["private_ip"], "vm_id": 100 + i, "nic_id": 0,
                 "vm_ip": f"192.168.0.{10 + i}", "vnet_id": 0} for i, a in enumerate(addresses[:10])]
    forwards = [{"private_ip": "10.0.0.41", "port": 2200 + i, "protocol": "tcp",
                 "vm_ip": f"192.168.0.{10 + i}", "vm_port": 22} for i in range(5)]
    return json.dumps({"vnets": [{"vnet_id": 0, "subnet": "192.168.0.0/24", "gateway": "192.168.0.1",
                                  "snat_ip": "10.0.0.41", "vni": 100}],
                       "addresses": addresses, "mappings": mappings, "forwards": forwards,
                       "interface": "ens5", "generation": 7,
                       # nat.blocked_networks and nat.allowed as pushed with their defaults
                       "blocked_networks": [], "allowed": []})


def _vnet_payload() -> str:
    return samples.b64("<VNET><ID>5</ID><NAME>private</NAME><BRIDGE>br-mesh</BRIDGE>"
                       f"<VN_MAD>{samples.VN_MAD}</VN_MAD><VLAN_ID>100</VLAN_ID>"
                       "<VLAN_ID_AUTOMATIC>0</VLAN_ID_AUTOMATIC><TEMPLATE/></VNET>") + "\n"


def _doctor_request() -> str:
    """What `onemetal doctor` sends a host: the frontend's digests of the remotes, the peers."""
    digest = "0" * 64
    files = {f"vnm/{samples.VN_MAD}/{a}": digest for a in ("pre", "post", "clean")}
    return json.dumps({"files": files, "peers": ["one-1", "one-2"]}) + "\n"


def _storage(tree: str, tmp: str) -> dict[str, tuple[list[str], str]]:
    """The storage entries, run as oned runs them: ds-* and tm-* through their driver's links,
    the host side of a transfer (tm-host-*) through call, as the frontend's ssh runs it."""
    out = {f"ds-{a}": ([os.path.join(tree, *DS, a), *args], stdin)
           for a, (args, stdin) in storage.ds(tmp).items()}
    tm_stdin = storage.tm_stdin(tmp)
    out |= {f"tm-{a}": ([os.path.join(tree, *TM, a), *args], tm_stdin.get(a, ""))
            for a, args in storage.tm(tmp).items()}
    out |= {f"tm-host-{a}": ([os.path.join(tree, *CALL), f"tm-host-{a}", *args], stdin)
            for a, (args, stdin) in storage.tm_host(tmp).items()}
    out["mount-ensure"] = ([os.path.join(tree, *CALL), "mount-ensure", "1", "--source",
                            "10.0.0.9:/export"], "")
    out |= {f"vmm-{a}": ([os.path.join(tree, *VMM, a), *args], stdin)
            for a, (args, stdin) in storage.vmm(tmp).items()}
    out["storage-doctor"] = ([os.path.join(tree, *CALL), "storage-doctor"], "")
    return out


def cases(tree: str = REPO, tmp: str = NO_TMP) -> dict[str, tuple[list[str], str | None]]:
    """Entry (or "probe") -> (argv after the interpreter, stdin), for the remotes of `tree`;
    the storage samples' files in `tmp` (storage.prepare makes them)."""
    vm = _vm_payload()
    pool = samples.b64(samples.host_pool_xml([(0, "one-0", "10.0.0.41"), (1, "one-1", "10.0.0.42"),
                                              (2, "one-2", "10.0.0.43")])) + "\n"
    vnm_args = {"pre": [], "post": ["one-42", "one-1"], "clean": ["one-1"],
                "update_sg": ["one-42"], "update_nic": ["one-42", "0"],
                "vnet_create": ["5"], "vnet_delete": ["5"]}
    stdin = {"describe-vm": samples.b64(samples.big_vm_xml(50_000)) + "\n",
             "mesh-peers": pool, "mesh-health": "", "nat-apply": _nat_state(), "probe": "",
             "host-doctor": _doctor_request()}
    args = {"mesh-peers": ["one-1"], "nat-apply": ["--dry-run"]}
    out: dict[str, tuple[list[str], str | None]] = {}
    stored = _storage(tree, tmp)
    for entry in hostcall.ENTRIES:
        if entry in stored:
            out[entry] = stored[entry]
        elif entry.startswith("vnm-"):
            action = entry.removeprefix("vnm-")
            payload = _vnet_payload() if action.startswith("vnet_") else vm
            out[entry] = ([os.path.join(tree, *VNM, action), *vnm_args[action]], payload)
        else:
            # None: no sample input here yet; main names it as not measured
            out[entry] = ([os.path.join(tree, *CALL), entry, *args.get(entry, [])],
                          stdin.get(entry))
    out["probe"] = ([os.path.join(tree, *PROBE)], "")
    return out


def write_conf(tmp: str) -> str:
    """The benchmark's onemetal.conf in `tmp`: every directory it names is in `tmp` too."""
    conf = os.path.join(tmp, "onemetal.conf")
    with open(conf, "w", encoding="utf-8") as f:
        # underlay_mtu set: a host with no pushed peer list yet still knows its MTU
        f.write(f'[core]\nstate_dir = "{tmp}/state"\n[net]\nunderlay_mtu = 1500\n'
                + storage.conf(tmp))
    return conf


def once(argv: list[str], stdin: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=30)
    return (time.perf_counter() - start) * 1000, proc


def outcome(name: str, proc: subprocess.CompletedProcess[str]) -> str:
    """Where the entry ended: before its first command, or at its end; anything else is a failure."""
    if proc.returncode == BENCH_STOP_CODE:
        words = proc.stderr.strip().splitlines()[-1].removeprefix("bench: ").split()
        return " ".join(words[:4]) + (" ..." if len(words) > 4 else "")
    if proc.returncode == 0 and "ERROR" not in proc.stdout + proc.stderr:
        return "ran to its end (no command)"
    if proc.returncode == 1 and NO_TAP in proc.stderr:
        return "refused at the tap check (no VM runs here), before its first command"
    if proc.returncode == 1 and NO_XML_RESTORE in proc.stderr:
        return "refused by libvirt's test driver at its last call"
    if proc.returncode == 1 and any(text in proc.stderr for text in NO_DOMAIN):
        return "connected; libvirt's test driver has no such domain"
    if proc.returncode == 1 and UNSUPPORTED in proc.stderr:
        return "not supported by onemetal (what the action does)"
    sys.exit(f"{name} failed with exit code {proc.returncode}: {proc.stdout.strip()} "
             f"{proc.stderr.strip()}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--only", nargs="*", help="entries to measure (default: all)")
    parser.add_argument("--tree", default=REPO, help="the checkout whose remotes to run")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onemetal-bench-") as tmp:
        chosen = {k: v for k, v in cases(opts.tree, tmp).items() if not opts.only or k in opts.only}
        todo = {k: (args, stdin) for k, (args, stdin) in chosen.items() if stdin is not None}
        conf = write_conf(tmp)
        storage.prepare(tmp)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ONEMETAL_CONF": conf,
               BENCH_STOP: "1"}
        bare_argv = [PYTHON, "-c", "pass"]
        times: dict[str, list[float]] = {name: [] for name in ["bare", "libvirt", *todo]}
        ends: dict[str, str] = {}
        for name, (args, stdin) in todo.items():  # warm the page cache; check each one works
            storage.prepare(tmp)
            ends[name] = outcome(name, once([PYTHON, "-I", *args], stdin, env)[1])
        for _ in range(opts.runs):  # interleaved, so a burst of load hits every entry alike
            times["bare"].append(once(bare_argv, "", env)[0])
            times["libvirt"].append(once(LIBVIRT_FLOOR, "", env)[0])
            for name, (args, stdin) in todo.items():
                storage.prepare(tmp)  # what the last run of an entry removed, back (not timed)
                elapsed, proc = once([PYTHON, "-I", *args], stdin, env)
                outcome(name, proc)
                times[name].append(elapsed)
    bare = statistics.median(times["bare"])
    print(f"remotes of {opts.tree}")
    print(f"median of {opts.runs} runs each; bare interpreter ({' '.join(bare_argv)}): {bare:.1f} ms; "
          f"goal <= {GOAL}x = {bare * GOAL:.1f} ms")
    floor = statistics.median(times["libvirt"])
    print(f"floor of the vmm-* entries ({' '.join(LIBVIRT_FLOOR)}): {floor:.1f} ms = "
          f"{floor / bare:.2f}x bare; goal for them <= {VMM_GOAL}x that = {floor * VMM_GOAL:.1f} ms")
    print(f"{'entry':18} {'ms':>7} {'ratio':>6}  goal  ends")
    worst = 0.0
    for name in todo:
        ms = statistics.median(times[name])
        worst = max(worst, ms / bare)
        vmm = (f"; {ms / floor:.2f}x the floor, {'met' if ms / floor <= VMM_GOAL else 'MISS'}"
               if name.startswith("vmm-") else "")
        print(f"{name:18} {ms:7.1f} {ms / bare:5.2f}x  {'met ' if ms / bare <= GOAL else 'MISS'}  "
              f"{ends[name]}{vmm}")
    print(f"worst ratio: {worst:.2f}x")
    if len(todo) < len(chosen):
        print(f"not measured (no sample input in bench/cold_start.py yet): "
              f"{', '.join(k for k in chosen if k not in todo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
