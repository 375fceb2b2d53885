import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from onemetal.errors import LockTimeout
from onemetal.filestate import OwnedFiles
from onemetal.reconcile import diff, host_lock, reconcile

DRIVERS = os.path.join(os.path.dirname(__file__), "..", "drivers")


def files(n: int) -> dict[str, str]:
    return {f"peer-{i:04d}": f"10.0.{i // 250}.{i % 250 + 1}\n" for i in range(n)}


def apply(resource, want, lock_dir):
    return reconcile(resource, want, lock_dir=lock_dir, host="one-1", subsystem="test",
                     lock_timeout=10)


def test_plan_is_empty_when_converged_and_printable_otherwise():
    plan = diff("x", {"a": 1}, {"a": 1})
    assert not plan and str(plan) == "x: converged, nothing to do"
    plan = diff("x", {"a": 1, "b": 2}, {"a": 0, "c": 3})
    assert str(plan).splitlines() == ["x: 3 changes", "~ a: 0 -> 1", "+ b: 2", "- c"]


def test_apply_twice_is_a_no_op(tmp_path):
    resource = OwnedFiles(str(tmp_path / "state"), "mesh")
    assert len(apply(resource, files(5), str(tmp_path))) == 5
    mtimes = {n: os.stat(tmp_path / "state" / n).st_mtime_ns for n in files(5)}
    assert not apply(resource, files(5), str(tmp_path))
    assert mtimes == {n: os.stat(tmp_path / "state" / n).st_mtime_ns for n in files(5)}
    assert resource.read() == files(5)


def test_changes_and_removals_touch_only_owned_files(tmp_path):
    state = tmp_path / "state"
    resource = OwnedFiles(str(state), "mesh")
    apply(resource, files(3), str(tmp_path))
    (state / "operator-notes").write_text("not ours\n")
    other = OwnedFiles(str(state), "nat")
    apply(other, {"nat-table": "x\n"}, str(tmp_path))
    plan = apply(resource, {"peer-0000": "changed\n"}, str(tmp_path))
    assert (len(plan.change), len(plan.remove)) == (1, 2)
    assert sorted(os.listdir(state)) == ["nat-table", "operator-notes", "peer-0000"]
    assert other.read() == {"nat-table": "x\n"}


SLOW_APPLY = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {drivers!r})
    from onemetal.filestate import OwnedFiles
    from onemetal.reconcile import reconcile

    class Slow(OwnedFiles):
        def _write(self, name, content):
            super()._write(name, content)
            time.sleep(0.01)

    want = {{f"peer-{{i:04d}}": f"10.0.{{i // 250}}.{{i % 250 + 1}}\\n" for i in range(400)}}
    reconcile(Slow({state!r}, "mesh"), want, lock_dir={locks!r}, host="one-1",
              subsystem="test", lock_timeout=10)
""")


def test_apply_killed_midway_converges_when_run_again(tmp_path):
    state, locks = str(tmp_path / "state"), str(tmp_path)
    code = SLOW_APPLY.format(drivers=DRIVERS, state=state, locks=locks)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    def done() -> int:
        return len([n for n in os.listdir(state) if not n.startswith(".")]) if os.path.isdir(state) else 0

    while time.monotonic() < deadline and done() < 50:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    resource = OwnedFiles(state, "mesh")
    written = len(resource.read())
    assert 50 <= written < 400, f"kill did not land midway ({written} files)"
    plan = apply(resource, files(400), locks)
    # each file is replaced atomically: the one being written when killed is simply missing
    assert len(plan.add) == 400 - written and not plan.change and not plan.remove
    assert resource.read() == files(400)
    assert not apply(resource, files(400), locks)
    assert not [n for n in os.listdir(state) if n.startswith(".")], "temporary files left"


def test_lock_waits_are_bounded_and_name_the_lock(tmp_path):
    with host_lock(str(tmp_path), "one-1", "mesh", timeout=1):
        start = time.monotonic()
        with pytest.raises(LockTimeout, match="one-1.mesh.lock"):
            with host_lock(str(tmp_path), "one-1", "mesh", timeout=0.3):
                pass
        assert time.monotonic() - start < 2
    with host_lock(str(tmp_path), "one-1", "mesh", timeout=0.3):
        pass  # released by the first holder


def test_concurrent_reconciles_serialise_without_error(tmp_path):
    resource = OwnedFiles(str(tmp_path / "state"), "mesh")
    errors, plans = [], []

    def worker(n):
        try:
            plans.append(len(apply(resource, files(n), str(tmp_path))))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(20,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and sorted(plans) == [0] * 7 + [20]
