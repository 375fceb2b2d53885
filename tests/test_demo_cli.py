"""`onemetal demo` as a user runs it, in a subprocess: Ctrl-C mid-deploy tears the lab down,
--keep leaves it up to be entered until --down, and docs/demo.md names only real options."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest

from onemetal.cli import onemetal as onemetal_cli
from onemetal.demo_faults import FAULTS
from onemetal.lab.registry import REGISTRY_DIR, alive
from test_operator_doc import _commands, _option_names, _read, _resolve

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = {**os.environ, "PYTHONPATH": os.path.join(REPO, "drivers")}
DEMO = [sys.executable, "-m", "onemetal.cli.onemetal", "demo"]
DEPLOY_STARTED = re.compile(r"^ok +libvirtd on every host")  # the phase before the deploy
RUN_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0   # from SIGINT to exit: the teardown of a half-built lab
# the hints' places; of the VMs, those still up at the end
PLACES = ("frontend", "one-0", "one-1", "one-2", "nfs", "web", "db", "app", "internet")


def _cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=ENV)


def _record_of(owner_pid: int) -> dict | None:
    """The lab record written by the process `owner_pid`, if there is one yet."""
    for name in os.listdir(REGISTRY_DIR) if os.path.isdir(REGISTRY_DIR) else ():
        try:
            with open(os.path.join(REGISTRY_DIR, name), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):  # another lab's record being replaced
            continue
        if record.get("owner_pid") == owner_pid:
            return record
    return None


def _there(record: dict) -> list[str]:
    """The namespaces, processes and record file of `record`'s lab that are on the machine."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           timeout=10).stdout.split()
    found = [n for n in names if n.startswith(f"oml{record['token']}-")]
    found += [f"pid {p}" for p in record["pids"] if alive(p)]
    if os.path.exists(os.path.join(REGISTRY_DIR, f"{record['token']}.json")):
        found.append(f"record {record['token']}")
    return found


def _left_behind(record: dict) -> list[str]:
    """What of the lab is still there once its processes had a few seconds to be reaped."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(alive(p) for p in record["pids"]):
        time.sleep(0.1)
    return _there(record)


def _lines(pipe) -> queue.Queue[str | None]:
    """The pipe's lines as they come, read in a thread so that each wait can be bounded;
    None once it closed."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in pipe:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str | None], pattern: re.Pattern[str], timeout: float) -> list[str]:
    """Lines read up to and including the first matching `pattern`; fails after `timeout` s."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if pattern.search(line):
            return seen
    raise AssertionError(f"no line matching {pattern.pattern!r} in time:\n{''.join(seen)}")


def test_ctrl_c_mid_deploy_exits_130_and_leaves_nothing_behind() -> None:
    # Its own session, so that SIGINT goes to its whole process group as a terminal's Ctrl-C does.
    proc = subprocess.Popen(DEMO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, env=ENV, start_new_session=True)
    record = None
    try:
        lines = _lines(proc.stdout)
        _until(lines, DEPLOY_STARTED, RUN_TIMEOUT)
        record = _record_of(proc.pid)
        assert record is not None and record["pids"], "no lab record while the demo runs"
        interrupted = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=STOP_TIMEOUT)
        print(f"SIGINT to exit: {time.monotonic() - interrupted:.2f} s")
        rest = []
        while (line := lines.get(timeout=5)) is not None:
            rest.append(line)
        out = "".join(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert code == 130, out
    assert "interrupted" in out and "Traceback" not in out, out
    assert _left_behind(record) == []


@pytest.fixture
def kept_demo() -> Iterator[tuple[str, dict[str, str], dict]]:
    """`onemetal demo --keep` run to its end: its stdout, its entry hints by place, its record."""
    done = _cli("--keep", timeout=RUN_TIMEOUT)
    token = re.search(r"onemetal demo, lab (\w+)", done.stdout)
    path = os.path.join(REGISTRY_DIR, f"{token.group(1)}.json") if token else ""
    record = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert record is not None and record["kept"], done.stdout
        hints = {}
        for line in done.stdout.split("\n\n")[-1].strip().splitlines():
            place, command = re.split(r"\s{2,}", line, maxsplit=1)
            name, _, host = place.partition(" (on ")
            hints[re.sub(r"-\d+$", "", name) if host else name] = command  # web-10 (on one-2)
        yield done.stdout, hints, record
    finally:
        if record is not None and os.path.exists(path):
            _cli("--down", record["token"])   # a failed check leaves nothing up either


def _enter(hint: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` where the hint puts an operator (its shell, with -c)."""
    return subprocess.run([*shlex.split(hint), "-c", command], capture_output=True, text=True,
                          timeout=30)


def test_keep_leaves_a_lab_to_enter_until_down_removes_it(kept_demo) -> None:
    stdout, hints, record = kept_demo
    token = record["token"]
    assert set(PLACES) <= set(hints) and "teardown" in hints, stdout
    assert hints["teardown"] == f"onemetal demo --down {token}"
    whole = [*record["namespaces"], *(f"pid {p}" for p in record["pids"]), f"record {token}"]
    assert sorted(_there(record)) == sorted(whole)   # all of it up, though its process ended
    ping = _enter(hints["web"], "ping -c 1 -W 2 192.168.0.11")   # web to db, across hosts
    assert ping.returncode == 0, ping.stdout + ping.stderr
    mountinfo = _enter(hints["one-1"], "cat /proc/self/mountinfo").stdout
    # mountinfo: ID PARENT DEV ROOT MOUNTPOINT OPTIONS [TAGS] - FSTYPE SOURCE ...
    found = [line.split(" - ")[1].split()[:2] for line in mountinfo.splitlines()
             if line.split()[4] == "/var/lib/one/datastores"]
    assert found and found[-1][0].endswith("nfs4") and found[-1][1].endswith(":/export"), found
    down = _cli("--down", token)
    assert down.returncode == 0 and "removed" in down.stdout and token in down.stdout, \
        down.stdout + down.stderr
    assert _left_behind(record) == []


def test_down_refuses_a_token_no_kept_lab_has_and_a_token_needs_down() -> None:
    down = _cli("--down", "nosuchtoken")
    assert down.returncode != 0 and "nosuchtoken" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr, down.stderr
    bare = _cli("f00ba4")
    assert bare.returncode != 0 and "f00ba4" in bare.stderr and "--down" in bare.stderr, bare.stderr
    assert bare.stdout == ""


def test_demo_doc_names_only_options_and_faults_that_exist() -> None:
    """Every option docs/demo.md gives a command exists; every fault of FAULTS is in its table."""
    text = _read("docs", "demo.md")
    demo = onemetal_cli.main.commands["demo"]
    named: list[str] = []
    for tool, words in _commands(text):   # the other commands each phase runs, too
        command, rest = _resolve(tool, words)
        options = {w.split("=")[0] for w in rest if w.startswith("-")}
        assert options <= _option_names(command), f"{tool} {' '.join(words)}: no {options}"
        named += options if command is demo else []
    assert {"--keep", "--down", "-j", "--inject", "--underlay-mtu"} <= set(named), named
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", text, re.M))
    assert documented == set(FAULTS), documented ^ set(FAULTS)
