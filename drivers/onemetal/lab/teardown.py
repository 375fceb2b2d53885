"""Tearing labs down: one lab's record, or the labs of processes that died without doing it."""

from __future__ import annotations

import logging
import shutil

from onemetal.lab import netns
from onemetal.lab.registry import Record, stale_records, stop_pids

log = logging.getLogger(__name__)


def teardown_record(record: Record) -> list[str]:
    """Stop every process a lab started and remove its namespaces; returns what was left over."""
    pids = list(record.pids)
    for ns in record.namespaces:
        if netns.exists(ns):
            pids += netns.pids(ns)  # sessions sshd forked, pings a test left running
    left = stop_pids(sorted(set(pids)))
    for ns in reversed(record.namespaces):
        netns.delete(ns)
    for directory in record.netns_etc:
        netns.remove_etc(directory)
    shutil.rmtree(record.workdir, ignore_errors=True)
    leftovers = [f"pid {p}" for p in left] + [ns for ns in record.namespaces if netns.exists(ns)]
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
