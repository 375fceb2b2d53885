"""What `onemetal demo` shows while it runs: one line per phase when it ends, and on a
terminal a spinner with the phase's counter, redrawn in place while it runs.

    progress = Progress(sys.stdout, sys.stdout.isatty())
    with progress.phase("deploying 4 VMs", total=4) as p:
        p.advance("vm 12")

Only a TTY gets the spinner: a log or a pipe sees the final lines alone, in order.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from onemetal.demo_report import Phase

FRAMES = "|/-\\"
REFRESH = 0.1   # seconds between redraws: at most 10 a second
CLEAR = "\r\x1b[K"   # back to the line's start, erase to its end
_JOIN_TIMEOUT = 2.0


def _reason(exc: BaseException) -> str:
    """Why a phase ended, in a person's words: a signal by its name, not "143" or a class."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    code = exc.code if isinstance(exc, SystemExit) else None
    if isinstance(code, int) and 128 < code < 128 + signal.NSIG:
        return f"stopped by {signal.Signals(code - 128).name}"   # the lab's SIGTERM handler
    return str(exc) or type(exc).__name__


class PhaseRun:
    """The running phase, as the code inside `with progress.phase(...)` sees it."""

    def __init__(self, name: str, total: int | None) -> None:
        self.name = name
        self.total = total
        self.count = 0
        self.label = ""
        self.detail = ""   # what the report's PHASES table says; the counter when left empty
        self.started = time.monotonic()

    def advance(self, label: str = "", by: int = 1) -> None:
        self.count += by
        self.label = label

    @property
    def counter(self) -> str:
        if self.total is None:
            return str(self.count) if self.count else ""
        return f"{self.count}/{self.total}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Progress:
    def __init__(self, out: TextIO, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.phases: list[Phase] = []
        self._lock = threading.Lock()   # one writer at a time: the spinner never splits a line
        self._current: PhaseRun | None = None
        self._drawn = False   # a spinner line is on screen and must be cleared first

    def _write(self, line: str) -> None:
        """A whole line, replacing the spinner if one is drawn; caller holds the lock."""
        self.out.write((CLEAR if self._drawn else "") + line + "\n")
        self._drawn = False
        self.out.flush()

    def note(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def _draw(self, run: PhaseRun, frame: int) -> None:
        parts = [FRAMES[frame % len(FRAMES)], run.name, run.counter, run.label,
                 f"{run.elapsed():.1f} s"]
        line = "  ".join(p for p in parts if p)
        # A line wider than the terminal wraps, and \r then redraws only its last row.
        width = shutil.get_terminal_size((80, 24)).columns - 1
        with self._lock:
            if self._current is run:
                self.out.write(CLEAR + line[:width])
                self.out.flush()
                self._drawn = True

    def _spin(self, run: PhaseRun, stop: threading.Event) -> None:
        frame = 0
        while not stop.is_set():
            self._draw(run, frame)
            frame += 1
            stop.wait(REFRESH)

    @contextmanager
    def phase(self, name: str, total: int | None = None) -> Iterator[PhaseRun]:
        if self._current is not None:
            raise RuntimeError(f"phase {name!r} started inside phase {self._current.name!r}")
        run = PhaseRun(name, total)
        self._current = run
        stop = threading.Event()
        spinner = None
        if self.tty:
            spinner = threading.Thread(target=self._spin, args=(run, stop),
                                       name="onemetal-progress", daemon=True)
            spinner.start()
        try:
            yield run
        except BaseException as exc:   # Ctrl-C too: the phase is reported, then unwinds
            self._end(run, stop, spinner, _reason(exc))
            raise
        self._end(run, stop, spinner, None)

    def _end(self, run: PhaseRun, stop: threading.Event, spinner: threading.Thread | None,
             error: str | None) -> None:
        stop.set()
        if spinner is not None:
            spinner.join(_JOIN_TIMEOUT)
        seconds = run.elapsed()
        with self._lock:
            self._current = None
            if error is None:
                counter = f"  {run.counter}" if run.counter else ""
                self._write(f"{'ok':<6} {run.name}{counter}  {seconds:.2f} s")
            else:
                self._write(f"FAILED {run.name}: {error}")
        self.phases.append(Phase(run.name, round(seconds, 3), error is None,
                                 error or run.detail or run.counter))
