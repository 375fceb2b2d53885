"""bench/ds_monitor.py --lab: one small run on the lab's NFS prints every figure, in bounds."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO

MONITOR = re.compile(r"^  (DS|TM) monitor, (healthy share|hung share|server stopped) +"
                     r"([\d.]+) ms  \[([\d.]+)\.\.([\d.]+)\]  exit (\d+): (.*)$", re.M)
MARGIN_MS = 20000  # SSH and the interpreter's start-up around the deadline, on a loaded machine


def _figure(pattern: str, out: str) -> float:
    found = re.search(pattern, out, re.M)
    assert found, (pattern, out)
    return float(found.group(1))


def test_a_small_lab_run_prints_clone_ratio_throughput_and_bounded_monitors():
    timeout = 2.0
    run = subprocess.run([sys.executable, os.path.join(REPO, "bench", "ds_monitor.py"), "--lab",
                          "--size-mb", "8", "--cycles", "1", "--monitor-cycles", "2",
                          "--timeout", str(timeout)],
                         capture_output=True, text=True, timeout=400)
    out = run.stdout
    print(out)
    assert run.returncode == 0, run.stderr
    assert _figure(r"SSH round trip .* ([\d.]+) ms", out) > 0
    assert _figure(r"dd of 8 MiB: write ([\d.]+) MiB/s", out) > 0
    assert _figure(r"dd of 8 MiB: write [\d.]+ MiB/s, read ([\d.]+) MiB/s", out) > 0
    overlay = _figure(r"qcow2 image: overlay .* ([\d.]+) ms", out)
    copy = _figure(r"raw image: full copy .* ([\d.]+) ms", out)
    ratio = _figure(r"full copy / overlay: ([\d.]+)x", out)
    assert overlay > 0 and copy > 0 and ratio > 0
    assert abs(ratio - copy / overlay) < 0.1
    assert f"deadline storage.probe_timeout = {timeout:g} s" in out

    seen = {(m[0], m[1]): m for m in MONITOR.findall(out)}
    assert len(seen) == 6, out
    for (driver, share), (_, _, median, low, high, code, said) in seen.items():
        assert 0 < float(low) <= float(median) <= float(high)
        if share == "healthy share":
            assert code == "0" and said.startswith("USED_MB="), (driver, said)
        else:
            assert code != "0" and "USED_MB" not in said, (driver, share, said)
            assert float(high) < timeout * 1000 + MARGIN_MS, (driver, share, high)
    for driver in ("DS", "TM"):
        assert f"did not answer within {timeout:g} s" in seen[(driver, "hung share")][6]
