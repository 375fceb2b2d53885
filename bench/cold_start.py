#!/usr/bin/env python3
"""Cold start of a remote entry point, as oned pays it on every action.

Measures, in one run on this machine, the median wall time of
  bare:  /usr/bin/python3 -c pass
  entry: remotes/onemetal/call describe-vm, stdin = a ~50 KB VM payload in base64
         (interpreter start, imports, base64 + XML parsing, views, output)
and prints both in ms and their ratio. Goal: entry < 150 ms and <= 3x bare.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))

from onemetal.lab import samples  # noqa: E402

PYTHON = "/usr/bin/python3"
RUNS = 30


def median_ms(argv: list[str], stdin: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            sys.exit(f"{argv} failed: {proc.stderr}")
    return statistics.median(times)


def main() -> int:
    xml = samples.big_vm_xml(50_000)
    payload = samples.b64(xml) + "\n"
    call = os.path.join(REPO, "remotes", "onemetal", "call")
    median_ms([PYTHON, "-c", "pass"], "")  # warm the page cache for both
    bare = median_ms([PYTHON, "-c", "pass"], "")
    entry = median_ms([call, "describe-vm"], payload)
    ratio = entry / bare
    print(f"payload: {len(xml)} bytes of VM XML ({len(payload)} base64), {RUNS} runs each, median")
    print(f"bare interpreter ({PYTHON} -c pass): {bare:7.1f} ms")
    print(f"remote entry (call describe-vm):      {entry:7.1f} ms")
    print(f"ratio entry/bare: {ratio:.2f}x")
    print(f"goal entry < 150 ms: {'met' if entry < 150 else 'NOT met'}; "
          f"goal ratio <= 3x: {'met' if ratio <= 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
