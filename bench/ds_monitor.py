#!/usr/bin/env python3
"""What a datastore look costs on a healthy directory and on a hung share, and what a TM clone
costs as a qcow2 overlay against a full copy.

1. Monitor: a statvfs plus a listing with each entry's size (what DS and TM monitor report),
   through onemetal.storage.probe (a forked child with a deadline), on a local directory
   holding --files images, and on a share that never answers: a FUSE mount nobody serves
   (onemetal.lab.hung_fuse; needs root and /dev/fuse, else that part is skipped and says
   why). The hung look must end at the deadline (--timeout), not hang.
2. Clone: a --size-mb image (qcow2, filled with data) cloned as the qcow2 TM does,
   `qemu-img create -f qcow2 -b` (an overlay), against a full copy, `qemu-img convert` and
   `cp`, on a local directory (--dir); medians per cycle and the ratio. The copies read the
   base from the page cache (it was just written): a cold or NFS-backed copy costs more.
3. --lab: the same questions asked of the drivers on the lab's real NFS (ds_monitor_lab.py):
   DS and TM monitor over SSH on a healthy share, on a hung one and with the server stopped
   (the last two bounded by storage.probe_timeout, --timeout), and TM clone of a qcow2 image
   (an overlay) against a raw one (a full copy), with the SSH round trip and the share's
   throughput. About 5 minutes at the defaults, almost all of it the 1 GiB full copy: the lab's
   FUSE client copies at ~4 MiB/s (cp's 128 KiB writes go out as 3 KiB NFS writes); each
   further --cycles adds that again.

    bench/ds_monitor.py [--size-mb 1024] [--cycles 5] [--files 50] [--timeout 1.0] [--dir /var/tmp]
    bench/ds_monitor.py --lab [--size-mb 1024] [--cycles 1] [--monitor-cycles 5] [--timeout 3.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))

from onemetal.run import Runner  # noqa: E402
from onemetal.storage import probe  # noqa: E402

MIB = 1 << 20
LAB_HELP = ("--lab builds a 3-host lab (root): ganesha, the FUSE NFSv4 client, the drivers over "
            "SSH; about 5 minutes at the defaults, most of it the 1 GiB full copy (~4 MiB/s "
            "through the lab's FUSE client), as long again per further --cycles.")


def _look(path: str) -> dict[str, object]:
    st = os.statvfs(path)
    sizes = {e.name: e.stat().st_size for e in os.scandir(path)}
    return {"free": st.f_bavail * st.f_frsize, "entries": len(sizes), "bytes": sum(sizes.values())}


def timed(call, cycles: int) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    times, last = [], None
    for _ in range(cycles):
        started = time.perf_counter()
        try:
            last = call()
        except probe.ProbeTimeout as exc:
            last = exc
        times.append((time.perf_counter() - started) * 1000)
    return times, last


def show(what: str, times: list[float], tail: str = "") -> float:
    median = statistics.median(times)
    print(f"  {what:<40} {median:9.1f} ms  [{min(times):.1f}..{max(times):.1f}]{tail}")
    return median


def monitor(args: argparse.Namespace, work: str) -> None:
    healthy = os.path.join(work, "healthy")
    os.makedirs(healthy)
    for i in range(args.files):
        with open(os.path.join(healthy, f"img{i}"), "wb") as f:
            f.truncate(64 * MIB)
    print(f"monitor (statvfs + listing of {args.files} entries, deadline {args.timeout:g} s):")
    times, answer = timed(lambda: probe.in_child(lambda: _look(healthy), args.timeout, healthy),
                          args.cycles)
    show("healthy directory", times)
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("  hung share: skipped (needs root and /dev/fuse for the FUSE mount)")
        return
    from onemetal.lab import hung_fuse

    hung = os.path.join(work, "hung")
    os.makedirs(hung)
    hung_fuse.private_namespace()  # the mount stays in this process's own namespace
    fd = hung_fuse.mount(hung)
    try:
        times, answer = timed(lambda: probe.in_child(lambda: _look(hung), args.timeout, hung),
                              args.cycles)
    finally:
        hung_fuse.release(fd, hung)
    show("hung share (FUSE, never answers)", times)
    print(f"  hung share answer: {answer}")


def clone(args: argparse.Namespace, work: str) -> None:
    run = Runner(timeout=600.0)
    base, raw = os.path.join(work, "base.qcow2"), os.path.join(work, "base.raw")
    block = os.urandom(MIB)  # data, not holes: a sparse image would make the copy look free
    with open(raw, "wb") as f:
        for _ in range(args.size_mb):
            f.write(block)
    run.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, base])
    os.unlink(raw)
    target = os.path.join(work, "disk.0")

    def fresh(argv: list[str]):  # type: ignore[no-untyped-def]
        def call() -> None:
            if os.path.exists(target):
                os.unlink(target)
            run.run(argv)
        return call

    print(f"clone of a {args.size_mb} MiB qcow2 image in {work}:")
    overlay = show("qemu-img create -b (overlay)", timed(fresh(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, target]), args.cycles)[0])
    convert = show("qemu-img convert (full copy)", timed(fresh(
        ["qemu-img", "convert", "-O", "qcow2", base, target]), args.cycles)[0])
    copy = show("cp (full copy)", timed(fresh(["cp", base, target]), args.cycles)[0])
    print(f"  full copy / overlay: convert {convert / overlay:.0f}x, cp {copy / overlay:.0f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                     epilog=LAB_HELP)
    parser.add_argument("--lab", action="store_true", help="on the lab's NFS (see below)")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--cycles", type=int, help="clone cycles (5, with --lab 1)")
    parser.add_argument("--monitor-cycles", type=int, default=5, help="with --lab")
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--timeout", type=float,
                        help="the probe's deadline in s (1.0, with --lab 3.0: an NFS look "
                             "on a loaded machine takes longer)")
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    args.cycles = args.cycles or (1 if args.lab else 5)
    args.timeout = args.timeout or (3.0 if args.lab else 1.0)
    if min(args.size_mb, args.cycles, args.monitor_cycles) < 1 or args.files < 0 \
            or args.timeout <= 0:
        parser.error("--size-mb, --cycles, --monitor-cycles must be >= 1, --files >= 0, "
                     "--timeout > 0")
    if args.lab:
        from ds_monitor_lab import run_lab

        return run_lab(args.size_mb, args.cycles, args.monitor_cycles, args.timeout)
    work = tempfile.mkdtemp(prefix="ds-monitor-", dir=args.dir)
    try:
        monitor(args, work)
        clone(args, work)
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
