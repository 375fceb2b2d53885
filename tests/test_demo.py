"""The README's first command: `onemetal demo` builds the reference deployment and checks every step;
with a fault injected mid-run it reports the failure and exits non-zero; both leave nothing behind."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from onemetal.demo import run_demo
from onemetal.lab import netns
from onemetal.lab.registry import REGISTRY_DIR, alive

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _left_behind(token: str) -> list[str]:
    """Namespaces and the lab record of lab `token` still on the machine."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           timeout=10).stdout.split()
    left = [n for n in names if n.startswith(f"oml{token}-")]
    if os.path.exists(os.path.join(REGISTRY_DIR, f"{token}.json")):
        left.append(f"record {token}")
    return left


def _processes(run) -> list[int]:  # type: ignore[no-untyped-def]
    """Every process of the built lab: the ones it recorded and any in its namespaces."""
    record = run.lab.record
    return [*record.pids, *[p for ns in record.namespaces for p in netns.pids(ns)]]


def test_the_demo_passes_every_check_and_leaves_nothing_behind() -> None:
    out, pids = io.StringIO(), []
    code = run_demo(out=out, tty=False, on_lab=lambda run: pids.extend(_processes(run)))
    text = out.getvalue()
    assert len(pids) > 20  # ovsdb, vswitchd, sshd, libvirtd, ganesha, NFS clients, listeners
    assert [p for p in pids if alive(p)] == []
    assert code == 0, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("all ") and " checks passed in " in last, last
    for section in ("PHASES", "CONNECTIVITY", "NIC MTU", "ELASTIC IPS", "EGRESS",
                    "DATASTORE MOUNTS", "CHECKS"):
        assert f"\n{section}\n" in text
    token = text.split("onemetal demo, lab ", 1)[1].split()[0]
    assert _left_behind(token) == []


def test_a_flushed_nat_table_mid_run_fails_the_demo_and_names_the_elastic_ips() -> None:
    out = io.StringIO()
    code = run_demo(out=out, as_json=True, inject="nat-flush", tty=False)
    report = json.loads(out.getvalue())
    failed = sorted(c["name"] for c in report["checks"] if not c["ok"])
    assert code == 1
    # inbound through each EIP breaks, and so does leaving from it; doctor names the table
    assert {"eip web", "eip db", "egress web", "egress db", "onemetal doctor"} <= set(failed), failed
    assert not [n for n in failed if n.startswith(("connectivity", "mtu", "mount"))], failed
    assert _left_behind(report["token"]) == []


def test_the_cli_refuses_an_unknown_fault_before_building_anything() -> None:
    done = subprocess.run([sys.executable, "-m", "onemetal.cli.onemetal", "demo", "--inject",
                           "meteor"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": os.path.join(REPO, "drivers")})
    assert done.returncode != 0 and "--inject" in done.stderr and "meteor" in done.stderr
    assert done.stdout == ""
