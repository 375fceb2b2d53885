"""Which programs a driver action starts on a lab host: strace -f on the host's sshd.

oned's actions arrive over SSH, so every process they start descends from the host's
sshd. Tracing it (`strace -f -e trace=%process`) while one action runs gives the
process tree; the commands of a driver script are the programs its own process
starts, and `sudo -n <tool>` counts once as a command and twice as processes.

    with traced(lab.host("one-0"), lab.workdir) as trace:
        drive.vnm(lab, "one-0", "post", [...], xml)
    trace.commands("/post")   # [("sudo", "-n", "ovs-vsctl", ...), ...]
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from onemetal.lab.host import LabHost
from onemetal.run import Runner

_ATTACH_TIMEOUT = 10.0
_DETACH_TIMEOUT = 10.0
_LINE = re.compile(r"^(\d+)\s+(.*)$")
_EXEC = re.compile(r'^execve\("([^"]*)", \[(.*?)\](?:, | <unfinished)')
_FORK = re.compile(r"^(?:<\.\.\. )?(clone3?|vfork|fork)\b.*= (\d+)$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Trace:
    """The programs started under sshd while the trace ran (filled in when it stops)."""

    parent: dict[int, int] = field(default_factory=dict)   # child pid -> parent pid
    execs: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # (pid, argv), in order

    def _pids_of(self, script: str) -> set[int]:
        # argv[1] too: a script started through its interpreter (`python3 .../onemetal/call`).
        return {pid for pid, argv in self.execs if any(a.endswith(script) for a in argv[:2])}

    def _descends(self, pid: int, roots: set[int]) -> bool:
        seen = 0
        while pid in self.parent and seen < 64:  # bounded: a pid tree is never that deep
            pid = self.parent[pid]
            if pid in roots:
                return True
            seen += 1
        return False

    def commands(self, script: str) -> list[tuple[str, ...]]:
        """What the script (argv[0] or [1] ends in `script`) ran itself: its children's first exec."""
        roots = self._pids_of(script)
        first: dict[int, tuple[str, ...]] = {}
        for pid, argv in self.execs:
            if self.parent.get(pid) in roots and pid not in first:
                first[pid] = argv
        return list(first.values())

    def processes(self, script: str) -> list[tuple[str, ...]]:
        """Every program exec'd below the script: sudo and the tool it starts are two."""
        roots = self._pids_of(script)
        return [argv for pid, argv in self.execs if pid not in roots and self._descends(pid, roots)]


def _parse(text: str, trace: Trace) -> None:
    pending: dict[int, tuple[str, ...]] = {}
    for raw in text.splitlines():
        match = _LINE.match(raw)
        if not match:
            continue
        pid, rest = int(match[1]), match[2]
        if (fork := _FORK.match(rest)) is not None:
            trace.parent[int(fork[2])] = pid
        elif (call := _EXEC.match(rest)) is not None:
            argv = tuple(s.encode().decode("unicode_escape") for s in _STRING.findall(call[2]))
            if rest.endswith("= 0"):
                trace.execs.append((pid, argv))
            elif "<unfinished" in rest:
                pending[pid] = argv
        elif rest.startswith("<... execve resumed>") and rest.endswith("= 0") and pid in pending:
            trace.execs.append((pid, pending.pop(pid)))


def _tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


@contextmanager
def traced(host: LabHost, workdir: str) -> Iterator[Trace]:
    """Trace every process sshd starts on `host` inside the block (lab only: root, strace)."""
    with open(host.path("/run/sshd.pid"), encoding="ascii") as f:
        sshd = int(f.read().strip())
    out = os.path.join(workdir, f"strace-{host.name}-{time.monotonic_ns()}.log")
    proc = Runner().spawn(["strace", "-f", "-qq", "-s", "256", "-e", "trace=%process",
                           "-e", "signal=none", "-o", out, "-p", str(sshd)], out + ".err")
    trace = Trace()
    try:
        deadline = time.monotonic() + _ATTACH_TIMEOUT
        while _tracer_of(sshd) != proc.pid:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"strace did not attach to sshd {sshd} on {host.name}")
            time.sleep(0.01)
        yield trace
    finally:
        proc.send_signal(signal.SIGINT)  # detaches from every traced process
        try:
            proc.wait(_DETACH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(_DETACH_TIMEOUT)
    with open(out, encoding="utf-8", errors="replace") as f:
        _parse(f.read(), trace)
