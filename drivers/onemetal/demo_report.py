"""The report `onemetal demo` prints: what each phase took and every check it made.

Each row knows whether it passed and names itself as a check: the text, the JSON and
the failures are views of one list (`all_checks`), so no view can disagree with another."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from onemetal.doctor_report import FAIL, WARN
from onemetal.doctor_report import Check as DoctorCheck
from onemetal.nat.output import table


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


@dataclass(frozen=True)
class Check:
    """Anything not in a table of its own: the doctor's verdict, the DS monitor, a migrate."""
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    ok: bool
    detail: str = ""

    def checks(self) -> list[Check]:
        return [Check(f"phase {self.name}", self.ok, self.detail)]


@dataclass(frozen=True)
class Matrix:
    """Who reached whom: `reach[(src, dst)]` measured, `expected[(src, dst)]` the policy.
    A pair with no measurement fails: an unmeasured cell must not pass as blocked."""
    vms: list[str]
    reach: dict[tuple[str, str], bool]
    expected: dict[tuple[str, str], bool]

    def __post_init__(self) -> None:
        missing = [f"{s}->{d}" for s, d in self.pairs() if (s, d) not in self.expected]
        if missing:
            raise ValueError(f"matrix: no expectation for {', '.join(missing)}")

    def pairs(self) -> list[tuple[str, str]]:
        return [(s, d) for s in self.vms for d in self.vms if s != d]

    def cell_ok(self, src: str, dst: str) -> bool:
        return self.reach.get((src, dst)) == self.expected[(src, dst)]

    def cell(self, src: str, dst: str) -> str:
        if src == dst:
            return "."
        if not self.cell_ok(src, dst):
            return "FAIL"
        return "ok" if self.expected[(src, dst)] else "--"

    def checks(self) -> list[Check]:
        def detail(s: str, d: str) -> str:
            seen = self.reach.get((s, d))
            return (f"expected {'reachable' if self.expected[(s, d)] else 'blocked'}, "
                    + ("not measured" if seen is None else "reached" if seen else "blocked"))
        return [Check(f"connectivity {s}->{d}", self.cell_ok(s, d), detail(s, d))
                for s, d in self.pairs()]


@dataclass(frozen=True)
class NicRow:
    vm: str
    host: str
    port: str
    port_mtu: int | None
    guest_mtu: int | None
    expected_mtu: int

    @property
    def ok(self) -> bool:
        return self.port_mtu == self.guest_mtu == self.expected_mtu

    def checks(self) -> list[Check]:
        return [Check(f"mtu {self.vm}", self.ok, f"{self.port} on {self.host}: port "
                      f"{self.port_mtu}, guest {self.guest_mtu}, expected {self.expected_mtu}")]


@dataclass(frozen=True)
class EgressRow:
    """The address the internet client saw a VM come from (None: nothing arrived)."""
    vm: str
    seen: str | None
    expected: str

    @property
    def ok(self) -> bool:
        return self.seen == self.expected

    def checks(self) -> list[Check]:
        return [Check(f"egress {self.vm}", self.ok, f"seen {self.seen}, expected {self.expected}")]


@dataclass(frozen=True)
class EipRow:
    vm: str
    eip: str
    private_ip: str
    reachable: bool
    egress_seen: str | None
    egress_expected: str

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks())

    def checks(self) -> list[Check]:
        reach = Check(f"eip {self.vm}", self.reachable, f"{self.eip} -> {self.private_ip} "
                      f"{'reached' if self.reachable else 'not reached'} from the client")
        return [reach, *EgressRow(self.vm, self.egress_seen, self.egress_expected).checks()]


@dataclass(frozen=True)
class MountRow:
    host: str
    mount_point: str
    fstype: str
    source: str
    ok: bool
    detail: str = ""

    def checks(self) -> list[Check]:
        return [Check(f"mount {self.host}", self.ok,
                      self.detail or f"{self.source} on {self.mount_point} ({self.fstype})")]


@dataclass
class Report:
    token: str
    elapsed: float
    fault: str = ""   # what --inject broke on purpose: a failing report says it was meant to
    phases: list[Phase] = field(default_factory=list)
    matrix: Matrix | None = None
    nics: list[NicRow] = field(default_factory=list)
    eips: list[EipRow] = field(default_factory=list)
    egress: list[EgressRow] = field(default_factory=list)
    mounts: list[MountRow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def all_checks(self) -> list[Check]:
        rows: list[Phase | Matrix | NicRow | EipRow | EgressRow | MountRow] = [
            *self.phases, *([self.matrix] if self.matrix else []), *self.nics, *self.eips,
            *self.egress, *self.mounts]
        return [c for row in rows for c in row.checks()] + list(self.checks)

    @property
    def ok(self) -> bool:
        return not failures(self)


def failures(report: Report) -> list[str]:
    return [c.name for c in report.all_checks() if not c.ok]


WARNS_NAMED = 3   # the first few WARNs by name: enough to know where to look, one line still


def doctor_check(name: str, checks: Sequence[DoctorCheck]) -> Check:
    """`onemetal doctor`'s checks as one report line: fails on any FAIL, and on no checks at
    all (a doctor that crashed before printing any must not pass); names the WARNs."""
    if not checks:
        return Check(name, False, "doctor reported no checks")
    bad, warned = ([c.name for c in checks if c.status == s] for s in (FAIL, WARN))
    more = [f"+{len(warned) - WARNS_NAMED} more"] if len(warned) > WARNS_NAMED else []
    named = f" ({', '.join(warned[:WARNS_NAMED] + more)})" if warned else ""
    return Check(name, not bad, f"{len(checks)} checks, {len(warned)} WARN{named}, "
                 f"{len(bad)} FAIL" + (f": {', '.join(bad)}" if bad else ""))


def summary(report: Report) -> str:
    names, total = failures(report), len(report.all_checks())
    if not names:
        return f"all {total} checks passed in {report.elapsed:.1f} s"
    return f"{len(names)} of {total} checks FAILED: {', '.join(names)}"


def _grid(matrix: Matrix) -> str:
    corner = "from\\to"
    rows = [{corner: src, **{dst: matrix.cell(src, dst) for dst in matrix.vms}}
            for src in matrix.vms]
    legend = "ok: reached as expected, --: blocked as expected, FAIL: not as expected"
    return table(rows, [corner, *matrix.vms]) + "\n" + legend


def _sections(report: Report) -> list[tuple[str, str]]:
    def rows(items: Sequence[Any], columns: list[str], cells: Callable[[Any], tuple]) -> str:
        if not items:
            return "(none)"
        return table([dict(zip(columns, cells(i))) for i in items], columns)

    return [
        ("PHASES", rows(report.phases, ["phase", "seconds", "result", "detail"],
                        lambda p: (p.name, f"{p.seconds:.2f}", _mark(p.ok), p.detail))),
        ("CONNECTIVITY", _grid(report.matrix) if report.matrix else "(none)"),
        ("NIC MTU", rows(report.nics, ["vm", "host", "port", "port mtu", "guest mtu", "expected",
                                       "result"],
                         lambda n: (n.vm, n.host, n.port, n.port_mtu, n.guest_mtu,
                                    n.expected_mtu, _mark(n.ok)))),
        ("ELASTIC IPS", rows(report.eips, ["vm", "eip", "private ip", "reached", "egress",
                                           "expected", "result"],
                             lambda e: (e.vm, e.eip, e.private_ip, "yes" if e.reachable else "no",
                                        e.egress_seen or "-", e.egress_expected, _mark(e.ok)))),
        ("EGRESS", rows(report.egress, ["vm", "seen", "expected", "result"],
                        lambda e: (e.vm, e.seen or "-", e.expected, _mark(e.ok)))),
        ("DATASTORE MOUNTS", rows(report.mounts, ["host", "mount point", "fstype", "source",
                                                  "result", "detail"],
                                  lambda m: (m.host, m.mount_point, m.fstype, m.source,
                                             _mark(m.ok), m.detail))),
        ("CHECKS", rows(report.checks, ["check", "result", "detail"],
                        lambda c: (c.name, _mark(c.ok), c.detail))),
    ]


def render_text(report: Report) -> str:
    parts = [f"onemetal demo, lab {report.token}"]
    parts += [f"fault injected: {report.fault}"] if report.fault else []
    parts += [f"\n{title}\n{body}" for title, body in _sections(report)]
    return "\n".join(parts) + "\n\n" + summary(report) + "\n"


def to_json(report: Report) -> str:
    checks = report.all_checks()
    names = failures(report)
    matrix = report.matrix
    data = {
        "token": report.token,
        "elapsed": round(report.elapsed, 3),
        "fault": report.fault or None,
        "ok": not names,
        "totals": {"checks": len(checks), "passed": len(checks) - len(names),
                   "failed": len(names)},
        "failures": names,
        "phases": [asdict(p) for p in report.phases],
        "connectivity": None if matrix is None else {
            "vms": list(matrix.vms),
            "cells": [{"from": s, "to": d, "expected": matrix.expected[(s, d)],
                       "reached": matrix.reach.get((s, d)), "ok": matrix.cell_ok(s, d)}
                      for s, d in matrix.pairs()]},
        "nics": [{**asdict(n), "ok": n.ok} for n in report.nics],
        "eips": [{**asdict(e), "ok": e.ok} for e in report.eips],
        "egress": [{**asdict(e), "ok": e.ok} for e in report.egress],
        "mounts": [asdict(m) for m in report.mounts],
        "checks": [asdict(c) for c in checks],
    }
    return json.dumps(data, indent=1, sort_keys=True)
