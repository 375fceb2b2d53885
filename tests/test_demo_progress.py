"""The demo's progress: one line per phase, a spinner on a TTY only, failures re-raised."""

import io
import signal
import threading
import time

import pytest

from onemetal.demo_progress import CLEAR, REFRESH, Progress


def _spinners() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "onemetal-progress"]


def test_a_pipe_gets_exactly_one_line_per_phase_in_order():
    out = io.StringIO()
    progress = Progress(out, tty=False)
    with progress.phase("lab up"):
        time.sleep(0.25)   # time for a spinner to draw, if one wrongly ran
    with progress.phase("deploying 4 VMs", total=4) as p:
        for vm in (10, 11, 12, 13):
            p.advance(f"vm {vm}")
    progress.note("lab kept")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[0].startswith("ok     lab up  ") and lines[0].endswith(" s")
    assert lines[1].startswith("ok     deploying 4 VMs  4/4  ")
    assert lines[2] == "lab kept"
    assert [(p.name, p.ok, p.detail) for p in progress.phases] == \
        [("lab up", True, ""), ("deploying 4 VMs", True, "4/4")]
    assert progress.phases[0].seconds >= 0.25


def test_a_raising_phase_writes_failed_and_re_raises():
    out = io.StringIO()
    progress = Progress(out, tty=False)
    with pytest.raises(KeyError):
        with progress.phase("migrating vm 11", total=1):
            raise KeyError("one-2 refused")
    assert out.getvalue() == "FAILED migrating vm 11: 'one-2 refused'\n"
    [phase] = progress.phases
    assert not phase.ok and phase.detail == "'one-2 refused'"
    with pytest.raises(KeyboardInterrupt):
        with progress.phase("checking"):
            raise KeyboardInterrupt()
    assert out.getvalue().splitlines()[-1] == "FAILED checking: interrupted (Ctrl-C)"
    with pytest.raises(SystemExit):
        with progress.phase("teardown"):
            raise SystemExit(128 + signal.SIGTERM)   # what the lab's SIGTERM handler raises
    assert out.getvalue().splitlines()[-1] == "FAILED teardown: stopped by SIGTERM"


def _wait_for(out: io.StringIO, text: str) -> bool:
    deadline = time.monotonic() + 5
    while text not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    return text in out.getvalue()


def test_a_tty_gets_the_counter_redrawn_in_place_then_the_final_line():
    out = io.StringIO()
    progress = Progress(out, tty=True)
    begin = time.monotonic()
    with progress.phase("deploying 2 VMs", total=2) as p:
        assert len(_spinners()) == 1
        p.advance("vm 10")
        assert _wait_for(out, "deploying 2 VMs  1/2  vm 10")
        p.advance("vm 11")
        assert _wait_for(out, "deploying 2 VMs  2/2  vm 11")
    seconds = time.monotonic() - begin
    text = out.getvalue()
    redraws = text.split(CLEAR)[1:]
    print(f"{len(redraws) - 1} redraws in {seconds:.2f} s")
    # The spinner waits REFRESH between draws: never more than 10 a second.
    assert len(redraws) - 1 <= seconds / REFRESH + 1
    assert redraws[-1].startswith("ok     deploying 2 VMs  2/2  ") and redraws[-1].endswith(" s\n")
    assert text.count("\n") == 1   # the spinner never ends a line; only the final line does
    assert not _spinners()


def test_a_note_during_a_tty_phase_replaces_the_spinner_line():
    out = io.StringIO()
    progress = Progress(out, tty=True)
    with progress.phase("booting the guest"):
        assert _wait_for(out, "booting the guest")
        progress.note("guest on one-1")
        time.sleep(0.15)
    lines = out.getvalue().split("\n")
    assert lines[0].endswith(CLEAR + "guest on one-1")
    assert lines[1].split(CLEAR)[-1].startswith("ok     booting the guest  ")
    assert not _spinners()


def test_phases_do_not_nest():
    progress = Progress(io.StringIO(), tty=False)
    with progress.phase("outer"):
        with pytest.raises(RuntimeError, match="inside phase 'outer'"):
            with progress.phase("inner"):
                pass
    assert [p.name for p in progress.phases] == ["outer"]
