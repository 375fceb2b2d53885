"""Tearing labs down: one lab's record, or the labs of processes that died without doing it."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from onemetal.lab import netns
from onemetal.lab.registry import Record, stale_records, stop_pids

log = logging.getLogger(__name__)

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A process forked while the first ones were stopped (sshd's session, a ping a test started)
# would live on in a namespace that `ip netns del` then only unnames: look again, a bounded
# number of times.
PID_ROUNDS = 3


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C or SIGTERM during a teardown takes effect once it is done: stopped half-way, it
    would leave namespaces behind that only the next lab's sweep removes."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run on the main thread only: nothing to hold here
        return
    arrived: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: arrived.append(signum))
                for sig in HELD_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(arrived):
            signal.raise_signal(sig)  # what it would have done, now that nothing is left


def _stop_processes(record: Record) -> list[int]:
    """The record's PIDs and every process in its namespaces stopped; returns those still alive."""
    left: list[int] = []
    pids = list(record.pids)
    for _ in range(PID_ROUNDS):
        for ns in record.namespaces:
            if netns.exists(ns):
                pids += netns.pids(ns)
        pids = sorted(set(pids) - set(left))
        if not pids:
            break
        left += stop_pids(pids)
        pids = []
    return sorted(set(left))


def teardown_record(record: Record) -> list[str]:
    """Stop every process a lab started and remove its namespaces; returns what was left over."""
    with _signals_held():
        left = _stop_processes(record)
        for ns in reversed(record.namespaces):
            netns.delete(ns)
        for directory in record.netns_etc:
            netns.remove_etc(directory)
        shutil.rmtree(record.workdir, ignore_errors=True)
        leftovers = [f"pid {p}" for p in left] + [ns for ns in record.namespaces
                                                  if netns.exists(ns)]
        if not leftovers:
            record.forget()
    return leftovers


def sweep_stale() -> int:
    """Tear down labs whose owning process died without cleaning up (kill -9, a crashed run)."""
    swept = 0
    for record in stale_records():
        log.warning("removing stale lab %s of dead process %d", record.token, record.owner_pid)
        teardown_record(record)
        swept += 1
    return swept
