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
nothing to OVSDB or the flow table and log nothing). Each action is timed twice in one go: the
whole SSH stream it runs in (connection included, as drive.vnm runs one action), and the step
alone, between two steps of the same stream that print the host's clock: oned's deploy runs pre
and post in one stream with its VMM steps, so that is what an action costs there. Then one more
cycle, untimed, counts the commands each action runs (onemetal.lab.exec_trace). Prints medians
[min..max] in ms, the ratio stock/onemetal, the bare interpreters' start (`/usr/bin/python3 -c
pass`, `ruby -e 0`) and a step running /bin/true both ways, all measured in the same loop.

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
from dataclasses import dataclass
from typing import Any, Callable

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


STAMP = Step("../../../bin/date", ("+%s%N",))  # a step printing the host's clock, in ns
TRUE = "../../../bin/true"
PYTHON, RUBY = "/usr/bin/python3 -c pass", "ruby -e 0"
WALL, INNER = "SSH stream of its own, /bin/true", "inside a stream, /bin/true"


@dataclass(frozen=True)
class Timed:
    wall: float        # the whole SSH stream, connection included, as drive.vnm runs one action
    inner: float       # the step alone, between two clock steps of the same stream
    result: StepResult


# Who runs the actions: oneadmin over SSH (root through sudo -n), or root itself (--as root: a
# shell entered with nsenter, as an SSH stream would be, with no connection to pay).
AS = {"user": "oneadmin"}


def shell(lab: Lab) -> Any:
    return lab.ssh(HOST) if AS["user"] == "oneadmin" else lab.host(HOST)


def run_step(lab: Lab, step: Step) -> Timed:
    """The step in a stream of its own, framed by two clock steps: oned's deploy runs pre and
    post in one stream with the VMM steps, so a VNM action itself pays no SSH connection."""
    start = time.perf_counter()
    results = ssh_stream(shell(lab), [STAMP, step, STAMP])
    wall = time.perf_counter() - start
    if len(results) != 3 or results[0].code or results[2].code:
        return Timed(wall, 0.0, results[1] if len(results) > 1 else results[0])
    inner = (int(results[2].stdout) - int(results[0].stdout)) / 1e9
    return Timed(wall, inner, results[1])


Record = Callable[[str, Callable[[], Timed]], Timed]


def cycle(lab: Lab, driver: Driver, record: Record) -> None:
    host = lab.host(HOST)
    for action in ACTIONS:
        if action == "post":
            driver.plug(host)
        timed = record(action, lambda: run_step(lab, driver.step(action)))
        if timed.result.code != 0:
            raise AssertionError(f"{driver.name} {action} failed ({timed.result.code}): "
                                 f"{timed.result.stderr.strip()}")
        driver.verify(lab, action, timed.result)
    driver.unplug(host)


def timed_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    Runner(timeout=30).run(argv)
    return time.perf_counter() - start


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


Times = dict[str, dict[str, list[Timed]]]


def table(title: str, times: Times, names: list[str], pick: Callable[[Timed], float]) -> None:
    print(f"{title}\n  ms: median [min..max]     " + "".join(f"{n:>20}" for n in names)
          + ("   stock/onemetal" if len(names) == 2 else ""))
    for action in ACTIONS:
        values = {n: [pick(t) for t in times[n][action]] for n in names}
        row = "".join(f"{spread(values[n]):>20}" for n in names)
        if len(names) == 2:
            ours, stock = (statistics.median(values[n]) for n in names)
            row += f"   {stock / ours:5.2f}x  (1/3 goal {'met' if ours * 3 <= stock else 'NOT met'})"
        print(f"  {action:24}{row}")


def report(runs: int, times: Times, base: dict[str, list[float]], drivers: list[Driver],
           counts: dict[str, dict[str, str]]) -> None:
    names = [d.name for d in drivers]
    print(f"VNM actions on lab host {HOST} (1 VM, 1 NIC, {len(HOSTS) - 1} mesh peers), {runs} "
          + ("interleaved cycles, as oneadmin over oned's SSH stream, root through sudo -n"
             if AS["user"] == "oneadmin" else
             "interleaved cycles, as root in a shell of the host (no sudo, no SSH connection)"))
    table("each action in an SSH stream of its own (connection included):", times, names,
          lambda t: t.wall)
    table("each action inside a stream (between two clock steps; what a deploy's stream pays):",
          times, names, lambda t: t.inner)
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


def measure(lab: Lab, drivers: list[Driver], runs: int, base: dict[str, list[float]]) -> Times:
    times: Times = {d.name: {a: [] for a in ACTIONS} for d in drivers}
    floor = Step(TRUE, (), b64(drivers[0].xml))
    for index in range(runs):
        for driver in drivers if index % 2 == 0 else drivers[::-1]:
            def timed(action: str, run: Callable[[], Timed], name: str = driver.name) -> Timed:
                times[name][action].append(run())
                return times[name][action][-1]
            cycle(lab, driver, timed)
        base[PYTHON].append(timed_ms(["/usr/bin/python3", "-c", "pass"]))
        if RUBY in base:
            base[RUBY].append(timed_ms(["ruby", "-e", "0"]))
        step = run_step(lab, floor)
        base[WALL].append(step.wall)
        base[INNER].append(step.inner)
    return times


def count(lab: Lab, drivers: list[Driver]) -> dict[str, dict[str, str]]:
    counts: dict[str, dict[str, str]] = {}
    for driver in drivers:
        counts[driver.name] = {}

        def counted(action: str, run: Callable[[], Timed], d: Driver = driver) -> Timed:
            with traced(lab.host(HOST), lab.workdir) as trace:
                outcome = run()
            counts[d.name][action] = tally(trace, d.script(action))
            return outcome
        cycle(lab, driver, counted)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "30")))
    parser.add_argument("--stock", metavar="DIR", help="a stock remotes tree (stock_tree.py)")
    parser.add_argument("--rules", action="store_true",
                        help="give the NICs a security group (stock's ovswitch ignores it)")
    parser.add_argument("--no-counts", action="store_true", help="skip the strace cycle")
    parser.add_argument("--as", dest="user", choices=("oneadmin", "root"), default="oneadmin",
                        help="run the actions as oneadmin over SSH (default) or as root")
    args = parser.parse_args()
    AS["user"] = args.user
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
    base: dict[str, list[float]] = {PYTHON: [], **({} if missing else {RUBY: []}),
                                    WALL: [], INNER: []}
    with installed_lab(len(HOSTS), mesh=HOSTS) as lab:
        if not missing:
            remotes = os.path.join(lab.workdir, "frontend", "var", "lib", "one", "remotes")
            stock_lab.install(lab, remotes, args.stock)
        times = measure(lab, drivers, args.runs, base)
        counts = {} if no_counts else count(lab, drivers)
    report(args.runs, times, base, drivers, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
