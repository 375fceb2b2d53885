"""`onemetal doctor` against the demo lab, as an operator runs it on the frontend: all OK on the
built deployment; then each fault of demo_faults injected, detected as exactly its FAILs with the
remedy named, that remedy applied, and all OK again."""

from __future__ import annotations

import io
import json
import time
from typing import Callable


from onemetal import demo_faults
from onemetal.demo import run_demo
from onemetal.demo_lab import DemoLab
from onemetal.doctor_report import FAIL, WARN, Check

# The WARNs a healthy demo lab gives by design (per host), and why.
ALLOWED_WARN = {
    "kvm": "the lab's guests run under TCG: no usable /dev/kvm",
    # the share is mounted on the datastores directory as a whole, so each datastore's
    # directory is on the share, where FS_IOC_GETFLAGS is not answered (ENOTTY)
    "ds 0 bare mount point": "immutable state unknown on the share",
    "ds 1 bare mount point": "immutable state unknown on the share",
}
SETTLE = 30.0  # seconds BFD may take to see a tunnel's change on both of its ends


def doctor(demo: DemoLab) -> tuple[int, dict[str, Check], float]:
    started = time.monotonic()
    done = demo.onemetal("doctor", "-j", check=False)
    checks = {c["name"]: Check(**c) for c in json.loads(done.stdout or "[]")}
    return done.returncode, checks, time.monotonic() - started


def unexpected(code: int, checks: dict[str, Check]) -> list[str]:
    """What keeps the report from being healthy: a FAIL, or a WARN not allowed by design."""
    bad = [f"{c.name}: {c.status} {c.detail}" for c in checks.values()
           if c.status == FAIL or (c.status == WARN
                                   and c.name.split(": ")[-1] not in ALLOWED_WARN)]
    return bad + [f"exit code {code}"] * (code != 0 and not bad)


def until(demo: DemoLab, done: Callable[[int, dict[str, Check]], bool]) -> tuple[
        int, dict[str, Check], float]:
    """doctor until `done` says its report is what is wanted, at most SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    while True:
        code, checks, took = doctor(demo)
        if done(code, checks) or time.monotonic() > deadline:
            return code, checks, took
        time.sleep(1.0)


def failed(checks: dict[str, Check]) -> set[str]:
    return {n for n, c in checks.items() if c.status == FAIL}


def detected(name: str, code: int, checks: dict[str, Check]) -> list[str]:
    """What is wrong with doctor's report of fault `name`."""
    fault = demo_faults.FAULTS[name]
    problems = [f"exit code {code}"] * (code == 0)
    if failed(checks) != set(fault.doctor_checks):
        problems.append(f"FAIL {sorted(failed(checks))}, want {sorted(fault.doctor_checks)}")
    problems += [f"{n}: remedy {checks[n].remedy!r} names no {fault.doctor_remedy!r}"
                 for n in fault.doctor_checks
                 if n in checks and fault.doctor_remedy not in checks[n].remedy]
    return problems


def exercise(demo: DemoLab, name: str, failures: list[str]) -> str:
    """One fault: injected, detected, remedied, all OK again; returns its figures."""
    fault = demo_faults.FAULTS[name]
    said = fault.inject(demo)
    code, checks, took = until(demo, lambda c, found: set(fault.doctor_checks) <= failed(found))
    named = sorted(failed(checks)) or "none"
    failures += [f"{name}: {p}" for p in detected(name, code, checks)]
    started = time.monotonic()
    ran = fault.remedy(demo)
    code, checks, _ = until(demo, lambda c, found: not unexpected(c, found))
    healed = time.monotonic() - started
    failures += [f"{name}: after {ran}: {p}" for p in unexpected(code, checks)]
    return (f"{name}: {said}; doctor {took:.1f} s, FAIL {named}; {ran}: all OK after "
            f"{healed:.1f} s")


def test_doctor_names_each_injected_fault_and_its_remedy_then_all_ok() -> None:
    failures: list[str] = []
    figures: list[str] = []

    def check_faults(run) -> None:  # type: ignore[no-untyped-def]
        demo = run.demo
        assert demo is not None, "the demo stopped before its lab was built"
        code, checks, took = until(demo, lambda c, found: not unexpected(c, found))
        failures.extend(f"healthy lab: {p}" for p in unexpected(code, checks))
        warned = sorted({n.split(": ")[-1] for n, c in checks.items() if c.status == WARN})
        figures.append(f"healthy: {len(checks)} checks in {took:.1f} s, WARN only {warned}")
        figures.extend(exercise(demo, name, failures) for name in demo_faults.FAULTS)

    out = io.StringIO()
    code = run_demo(out=out, tty=False, on_lab=check_faults)
    print("\n" + "\n".join(figures))
    assert code == 0, out.getvalue()
    assert not failures, "\n".join(failures)
