"""The demo's report: every failure named once in failures(), the final line and the JSON."""

import json

import pytest

from onemetal.demo_report import (Check, EgressRow, EipRow, Matrix, MountRow, NicRow, Phase,
                                  Report, doctor_check, failures, render_text, to_json)
from onemetal.doctor_report import FAIL, OK, WARN
from onemetal.doctor_report import Check as DoctorCheck

VMS = ["vm10", "vm11", "vm12", "vm20"]


def _matrix(broken: tuple[str, str] | None) -> Matrix:
    # vm20 is on another vnet: blocked both ways; everything else reaches everything.
    expected = {(s, d): "vm20" not in (s, d) for s in VMS for d in VMS if s != d}
    reach = dict(expected)
    if broken:
        reach[broken] = not expected[broken]
    return Matrix(VMS, reach, expected)


def _report(faulty: bool) -> Report:
    return Report(
        token="abc123", elapsed=61.25,
        phases=[Phase("lab up", 4.5, True, "3 hosts"), Phase("deploying 4 VMs", 12.0, True, "4/4")],
        matrix=_matrix(("vm10", "vm11") if faulty else None),
        nics=[NicRow("vm10", "one-0", "one-10-0", 1450, 1450, 1450),
              NicRow("vm11", "one-1", "one-11-0", 1450, 1450, 1450),
              NicRow("vm12", "one-2", "one-12-0", 1450, 1500 if faulty else 1450, 1450)],
        eips=[EipRow("vm11", "3.3.3.2", "192.168.0.11", True, "10.0.0.42", "10.0.0.42")],
        egress=[EgressRow("vm10", "10.0.0.41", "10.0.0.41")],
        mounts=[MountRow("frontend", "/var/lib/one/datastores", "fuse", "nfs:/export", True),
                MountRow("one-1", "/var/lib/one/datastores", "", "", not faulty,
                         "not mounted" if faulty else "")],
        checks=[Check("doctor", True, "all OK"), Check("migrate vm11", True, "one-1 -> one-2")])


def test_each_failure_is_named_in_failures_and_the_final_line_and_passing_rows_are_not():
    report = _report(faulty=True)
    assert failures(report) == ["connectivity vm10->vm11", "mtu vm12", "mount one-1"]
    text = render_text(report)
    last = text.rstrip().splitlines()[-1]
    total = len(report.all_checks())
    assert last == (f"3 of {total} checks FAILED: connectivity vm10->vm11, mtu vm12, mount one-1")
    for passing in ("mtu vm10", "mount frontend", "connectivity vm11->vm10", "eip vm11"):
        assert passing not in last
    assert not report.ok


def test_a_clean_report_says_all_checks_passed_with_the_elapsed_time():
    report = _report(faulty=False)
    assert failures(report) == [] and report.ok
    # 2 phases + 12 matrix cells + 3 NICs + EIP reach and egress + 1 egress + 2 mounts + 2 checks
    assert len(report.all_checks()) == 2 + 12 + 3 + 2 + 1 + 2 + 2
    assert render_text(report).rstrip().endswith("all 24 checks passed in 61.2 s")


def test_text_has_every_section_and_the_matrix_grid():
    lines = render_text(_report(faulty=True)).splitlines()
    for title in ("PHASES", "CONNECTIVITY", "NIC MTU", "ELASTIC IPS", "EGRESS",
                  "DATASTORE MOUNTS", "CHECKS"):
        assert title in lines
    grid = lines[lines.index("CONNECTIVITY") + 1:lines.index("CONNECTIVITY") + 6]
    assert grid[0].split() == ["FROM\\TO", "VM10", "VM11", "VM12", "VM20"]
    assert grid[1].split() == ["vm10", ".", "FAIL", "ok", "--"]
    assert grid[2].split() == ["vm11", "ok", ".", "ok", "--"]
    assert grid[4].split() == ["vm20", "--", "--", "--", "."]
    # Columns are aligned: every cell of a column starts where its header starts.
    starts = [grid[0].index(h) for h in ("VM10", "VM11", "VM12", "VM20")]
    assert all(row[s] != " " and row[s - 1] == " " for row in grid[1:] for s in starts)
    mtu = lines[lines.index("NIC MTU") + 1:lines.index("NIC MTU") + 5]
    assert mtu[0].startswith("VM ") and "PORT MTU" in mtu[0]
    assert mtu[3].split()[-1] == "FAIL" and mtu[1].split()[-1] == "ok"


def test_json_round_trips_with_every_check_and_the_totals():
    report = _report(faulty=True)
    data = json.loads(to_json(report))
    assert [c["name"] for c in data["checks"]] == [c.name for c in report.all_checks()]
    assert all(isinstance(c["ok"], bool) for c in data["checks"])
    assert data["totals"] == {"checks": 24, "passed": 21, "failed": 3}
    assert data["failures"] == failures(report) and data["ok"] is False
    [cell] = [c for c in data["connectivity"]["cells"] if not c["ok"]]
    assert cell == {"from": "vm10", "to": "vm11", "expected": True, "reached": False, "ok": False}
    assert [n["ok"] for n in data["nics"]] == [True, True, False]
    assert to_json(report) == to_json(report)  # stable: sorted keys


def test_an_unmeasured_pair_fails_and_a_missing_expectation_is_refused():
    expected = {("a", "b"): False, ("b", "a"): False}
    matrix = Matrix(["a", "b"], {("a", "b"): False}, expected)
    assert [c.name for c in matrix.checks() if not c.ok] == ["connectivity b->a"]
    assert matrix.cell("b", "a") == "FAIL"
    leaking = Matrix(["a", "b"], {("a", "b"): True, ("b", "a"): False}, expected)
    assert [leaking.cell("a", "b"), leaking.cell("b", "a")] == ["FAIL", "--"]
    with pytest.raises(ValueError, match="b->a"):
        Matrix(["a", "b"], {}, {("a", "b"): True})


def test_an_eip_row_fails_on_the_wrong_egress_address_alone():
    row = EipRow("vm11", "3.3.3.2", "192.168.0.11", True, "10.0.0.41", "10.0.0.42")
    assert not row.ok
    assert [c.name for c in row.checks() if not c.ok] == ["egress vm11"]


def test_doctor_checks_become_one_line_failing_on_fail_only():
    checks = [DoctorCheck("mesh one-1", OK, ""), DoctorCheck("mtu", WARN, ""),
              DoctorCheck("mount one-2", FAIL, "")]
    assert doctor_check("doctor", checks) == Check("doctor", False,
                                                   "3 checks, 1 WARN (mtu), 1 FAIL: mount one-2")
    assert doctor_check("doctor", checks[:2]).ok
    warns = [DoctorCheck(f"w{i}", WARN, "") for i in range(5)]
    assert doctor_check("doctor", warns).detail == "5 checks, 5 WARN (w0, w1, w2, +2 more), 0 FAIL"


def test_a_doctor_that_reported_nothing_fails():
    assert doctor_check("doctor", []) == Check("doctor", False, "doctor reported no checks")


def test_a_report_with_a_fault_injected_says_so_under_its_title_and_in_its_json():
    report = _report(faulty=True)
    assert render_text(report).splitlines()[0] == "onemetal demo, lab abc123"
    assert json.loads(to_json(report))["fault"] is None
    report.fault = "the NAT gateway's table flushed"
    assert render_text(report).splitlines()[:2] == ["onemetal demo, lab abc123",
                                                    "fault injected: the NAT gateway's table flushed"]
    assert json.loads(to_json(report))["fault"] == "the NAT gateway's table flushed"
