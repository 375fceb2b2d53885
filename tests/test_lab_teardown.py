"""A lab's teardown finishes whatever happens while it runs: Ctrl-C, a process forking,
threads saving its record at once."""

import json
import os
import signal
import tempfile
import threading
import time
import uuid

import pytest

from onemetal.lab import netns
from onemetal.lab.registry import Record, alive
from onemetal.lab.teardown import teardown_record

# Ignores SIGTERM: the teardown waits out its grace before the KILL, time for a Ctrl-C.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
# On SIGTERM forks a child into the same namespace, writes its PID and exits.
FORKER = """
import os, signal, sys, time
def forked(*_):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(60)
        os._exit(0)
    with open(sys.argv[1], "w") as f:
        f.write(str(pid))
    os._exit(0)
signal.signal(signal.SIGTERM, forked)
print("ready", flush=True)
time.sleep(60)
"""


def _record(namespaces: list[str] = ()) -> Record:
    token = "t" + uuid.uuid4().hex[:5]
    record = Record(token=token, owner_pid=os.getpid(), workdir=tempfile.mkdtemp(),
                    namespaces=list(namespaces))
    record.save()
    return record


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_ctrl_c_during_the_teardown_takes_effect_once_it_is_done():
    record = _record()
    proc = netns.ROOT.spawn(["python3", "-c", STUBBORN], os.path.join(record.workdir, "log"))
    record.add_pid(proc.pid)
    time.sleep(0.3)  # its SIGTERM handler is set
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    begin = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            teardown_record(record)
        print(f"teardown with a Ctrl-C in it: {time.monotonic() - begin:.2f} s")
        assert proc.poll() == -signal.SIGKILL  # the teardown went on to its KILL
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(5)
    assert not os.path.exists(record.path) and not os.path.exists(record.workdir)


def test_a_process_forked_during_the_teardown_is_stopped_too():
    record = _record()
    ns = f"oml{record.token}-t"
    record.add_namespace(ns)
    netns.add(ns)
    child_file = os.path.join(record.workdir, "child")
    proc = netns.in_netns(ns).spawn(["python3", "-c", FORKER, child_file],
                                    os.path.join(record.workdir, "log"))
    try:
        log = os.path.join(record.workdir, "log")
        assert _wait_for(lambda: "ready" in open(log).read()), "the forker did not start"
        before = netns.pids(ns)
        child_pid = 0

        def read_child() -> None:
            nonlocal child_pid
            if _wait_for(lambda: os.path.exists(child_file) and open(child_file).read()):
                child_pid = int(open(child_file).read())

        reader = threading.Thread(target=read_child)
        reader.start()
        left = teardown_record(record)
        reader.join(10)
        assert before == [proc.pid]
        assert child_pid, "the forker never forked"
        assert left == [] and not alive(child_pid) and not netns.exists(ns)
    finally:
        proc.kill()
        proc.wait(5)
        netns.delete(ns)
        record.forget()


def test_threads_saving_one_record_at_once():
    record = _record()
    errors: list[str] = []
    # Beyond pid_max: no process has them, should a sweep ever stop this record's PIDs.
    with open("/proc/sys/kernel/pid_max", encoding="ascii") as f:
        beyond = int(f.read()) + 1

    def add(base: int) -> None:
        for i in range(100):
            try:
                record.add_pid(beyond + base + i)
            except OSError as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=add, args=(k * 1000,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        with open(record.path, encoding="utf-8") as f:
            assert sorted(json.load(f)["pids"]) == sorted(record.pids)
        assert len(record.pids) == 400
    finally:
        record.pids.clear()
        record.forget()
        os.rmdir(record.workdir)
