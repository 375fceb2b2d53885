#!/usr/bin/env python3
"""VNM action times on one lab host: onemetal's ovswitch_vxlan_unicast and, with --stock DIR,
OpenNebula's stock ovswitch_vxlan, in the same loop, interleaved.

Lab host one-0 is in a mesh of 4 hosts (3 peers). Each driver has one VM with one NIC; a cycle
runs, for each driver in turn (which goes first alternates), as oned does (a step of the SSH
stream, as oneadmin, root through sudo -n under OpenNebula's node sudoers):
  pre          the tap does not exist yet
  post         after the "hypervisor" made the tap and plugged it into the driver's bridge,
               with the VM's MAC in external_ids:attached-mac, as libvirt does
  post again   nothing to change
  clean        the tap still plugged (the most work clean can have); then the tap is deleted
Every action is checked afterwards (ports, tags, flows, devices; our no-change post must write
nothing to OVSDB or the flow table and log nothing). Then one more cycle, untimed, counts the
commands each action runs (onemetal.lab.exec_trace). Prints medians [min..max] in ms, the ratio
stock/onemetal, the bare interpreters' start (`/usr/bin/python3 -c pass`, `ruby -e 0`) and an
SSH step running /bin/true, all measured in the same loop.

  bench/vnm_actions.py [--runs N] [--stock DIR] [--rules]      (RUNS in the environment also works)
DIR is a stock remotes tree (bench/stock_tree.py builds one); docs/bench.md has the steps.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import time
from typing import Callable

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

import stock_lab  # noqa: E402
from conftest import installed_lab  # noqa: E402
from vnm_actions_drivers import ACTIONS, HOST, HOSTS, RULES, Driver, Ours, Stock  # noqa: E402

from onemetal.lab.exec_trace import Trace, traced  # noqa: E402
from onemetal.lab.lab import Lab  # noqa: E402
from onemetal.lab.oned import Step, StepResult, ssh_stream  # noqa: E402
from onemetal.lab.samples import b64  # noqa: E402
from onemetal.run import Runner  # noqa: E402


FLOOR = "SSH stream step running /bin/true"


def run_step(lab: Lab, step: Step) -> tuple[float, StepResult]:
    start = time.perf_counter()
    [result] = ssh_stream(lab.ssh(HOST), [step])
    return time.perf_counter() - start, result


def cycle(lab: Lab, driver: Driver, record: Callable[[str, Callable[[], tuple[float, StepResult]]],
                                                     tuple[float, StepResult]]) -> None:
    host = lab.host(HOST)
    for action in ACTIONS:
        if action == "post":
            driver.plug(host)
        seconds, result = record(action, lambda: run_step(lab, driver.step(action)))
        if result.code != 0:
            raise AssertionError(f"{driver.name} {action} failed ({result.code}): "
                                 f"{result.stderr.strip()}")
        driver.verify(lab, action, result)
    driver.unplug(host)


def timed_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    Runner(timeout=30).run(argv)
    return (time.perf_counter() - start) * 1000


def tally(trace: Trace, script: str) -> str:
    """Commands the script ran itself, and every process below it by program."""
    names = collections.Counter(os.path.basename(argv[0]) for argv in trace.processes(script))
    return (f"{len(trace.commands(script)):3d} commands {sum(names.values()):4d} processes  ("
            + ", ".join(f"{n} {c}" for n, c in names.most_common()) + ")")


def stock_missing(tree: str | None) -> str | None:
    """Why the stock side cannot run here, or None."""
    if not tree:
        return "no --stock DIR given (bench/stock_tree.py builds one; see docs/bench.md)"
    if not shutil.which("ruby"):
        return "ruby not found: the stock driver is Ruby (Debian package ruby)"
    if not os.path.isfile(os.path.join(tree, "vnm", stock_lab.DRIVER, "pre")):
        return f"{tree} has no vnm/{stock_lab.DRIVER}/pre: not a stock remotes tree"
    return None


def spread(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):6.1f} [{min(ms):.0f}..{max(ms):.0f}]"


def report(runs: int, times: dict[str, dict[str, list[float]]], base: dict[str, list[float]],
           drivers: list[Driver], counts: dict[str, dict[str, str]]) -> None:
    names = [d.name for d in drivers]
    print(f"VNM actions on lab host {HOST} (1 VM, 1 NIC, {len(HOSTS) - 1} mesh peers), {runs} "
          f"interleaved cycles, over SSH as oneadmin with sudo -n")
    print("ms: median [min..max]   " + "".join(f"{n:>20}" for n in names)
          + ("   stock/onemetal" if len(names) == 2 else ""))
    for action in ACTIONS:
        row = "".join(f"{spread(times[n][action]):>20}" for n in names)
        if len(names) == 2:
            ours, stock = (statistics.median(times[n][action]) for n in names)
            goal = "met" if ours * 3 <= stock else "NOT met"
            row += f"   {stock / ours:5.2f}x  (1/3 goal {goal})"
        print(f"  {action:22}{row}")
    print("baselines in the same loop (ms, median [min..max]):")
    for what, values in base.items():
        print(f"  {what:40} {spread(values)}")
    for d in drivers:
        print(f"{d.name} no-change post: OVSDB records written median "
              f"{statistics.median(d.noop_records):.0f}, stderr lines median "
              f"{statistics.median(d.noop_logs):.0f}")
    if counts:
        print("per action: commands the script ran, processes below it (sudo and its tool are "
              "two; strace -f on the host's sshd, onemetal.lab.exec_trace):")
        for name, per_action in counts.items():
            for action, line in per_action.items():
                print(f"  {name:9} {action:11} {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "30")))
    parser.add_argument("--stock", metavar="DIR", help="a stock remotes tree (stock_tree.py)")
    parser.add_argument("--rules", action="store_true",
                        help="give the NICs a security group (stock's ovswitch ignores it)")
    parser.add_argument("--no-counts", action="store_true", help="skip the strace cycle")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error(f"--runs: {args.runs} is out of range (1..1000)")
    rules = RULES if args.rules else ""
    missing = stock_missing(args.stock)
    if missing:
        print(f"stock side skipped: {missing}")
    drivers: list[Driver] = [Ours(rules)] + ([] if missing else [Stock(rules)])
    no_counts = "--no-counts given" if args.no_counts else (
        None if shutil.which("strace") else "strace not found (Debian package strace)")
    if no_counts:
        print(f"command counts skipped: {no_counts}")
    times = {d.name: {a: [] for a in ACTIONS} for d in drivers}
    base: dict[str, list[float]] = {"/usr/bin/python3 -c pass": []}
    if not missing:
        base["ruby -e 0"] = []
    base[FLOOR] = []
    counts: dict[str, dict[str, str]] = {}
    with installed_lab(len(HOSTS), mesh=HOSTS) as lab:
        if not missing:
            remotes = os.path.join(lab.workdir, "frontend", "var", "lib", "one", "remotes")
            stock_lab.install(lab, remotes, args.stock)
        floor = Step("../../../bin/true", (), b64(drivers[0].xml))
        for index in range(args.runs):
            order = drivers if index % 2 == 0 else drivers[::-1]
            for driver in order:
                def timed(action: str, run: Callable[[], tuple[float, StepResult]],
                          name: str = driver.name) -> tuple[float, StepResult]:
                    seconds, result = run()
                    times[name][action].append(seconds)
                    return seconds, result
                cycle(lab, driver, timed)
            base["/usr/bin/python3 -c pass"].append(timed_ms(["/usr/bin/python3", "-c", "pass"]) / 1000)
            if "ruby -e 0" in base:
                base["ruby -e 0"].append(timed_ms(["ruby", "-e", "0"]) / 1000)
            base[FLOOR].append(run_step(lab, floor)[0])
        if not no_counts:
            for driver in drivers:
                counts[driver.name] = {}

                def counted(action: str, run: Callable[[], tuple[float, StepResult]],
                            d: Driver = driver) -> tuple[float, StepResult]:
                    with traced(lab.host(HOST), lab.workdir) as trace:
                        outcome = run()
                    counts[d.name][action] = tally(trace, d.script(action))
                    return outcome
                cycle(lab, driver, counted)
    report(args.runs, times, base, drivers, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
