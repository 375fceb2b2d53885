"""oned's interactive SSH stream (src/mad/ruby/ssh_stream.rb), for the lab's oned double.

One `ssh <host> bash -s` session per VM action; every step is written to it as
SshStreamCommand does: first `[ -x script ]` as a command of its own (exit 42 when
missing), then the step through the heredoc of OpenNebulaDriver.do_action, each
command followed by the ExitCode/EOF markers that end its stdout and stderr. Unlike
lab/oned.ssh_stream, steps go one at a time, so a later step can depend on an
earlier one's answer (deploy's id feeds post) and a step can hit its own deadline.

The MAD updates the remotes and retries on 42; here the remotes are synced before
(frontend_host.sync_remotes), so 42 is reported as the step's result.
"""

from __future__ import annotations

import os
import re
import select
import selectors
import shlex
import signal
import subprocess
import time
from typing import Sequence

from onemetal.lab.oned import (EOF_CMD, MAGIC_RC, Step, StepResult, _logs, check_command,
                               error_message_7x, heredoc)

_EOF_OUT = b"EOF_OUT\n"
_EOF_ERR = re.compile(rb"^ExitCode: (\d*) EOF_ERR\n", re.M)
# ssh_stream.rb writes each command in slices of this size.
_SLICE = 100
_CLOSE_WAIT = 5.0


class SshStream:
    """A session of `argv` (e.g. oneadmin's `ssh host bash -s`, or a local `bash -s`)."""

    def __init__(self, argv: Sequence[str], remote_dir: str = "/var/tmp/one") -> None:
        self.argv = list(argv)
        self.remote_dir = remote_dir
        # Its own process group, as the MAD's popen3(:pgroup => true): a timeout kills it all.
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
        assert self._proc.stdin is not None
        os.set_blocking(self._proc.stdin.fileno(), False)  # _write's waits have a deadline
        self._alive = True

    def __enter__(self) -> "SshStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._alive and self._proc.poll() is None

    def run(self, step: Step, timeout: float = 60.0) -> StepResult:
        """One VMM or VNM script of the remote dir, with its arguments and stdin."""
        script = f"{self.remote_dir}/{step.script}"
        return self._checked(script, shlex.join([script, *step.args]), step.stdin, timeout)

    def run_command(self, words: Sequence[str], *, stdin: str | None = None,
                    output: str | None = None, timeout: float = 60.0) -> StepResult:
        """One of the MAD's own commands (`/bin/mkdir -p <dir>`, `/bin/cat - ><file>`)."""
        command = shlex.join(words) + (f" >{shlex.quote(output)}" if output else "")
        return self._checked(words[0], command, stdin, timeout)

    def _checked(self, base: str, command: str, stdin: str | None, timeout: float) -> StepResult:
        # One deadline for the check and the step (the MAD times each wait): a step's bound.
        deadline = time.monotonic() + timeout
        found = self._exec(check_command(base), "", deadline)
        if found.code != 0:
            return found
        line, tail = heredoc(command, stdin)
        return self._exec(line, tail, deadline)

    def _exec(self, command: str, tail: str, deadline: float) -> StepResult:
        if not self._alive:  # closed or killed; a session that died on its own is read below
            return StepResult(-1, "", "the SSH stream is closed")
        text = f"({command}); {EOF_CMD}"
        try:
            for start in range(0, len(text), _SLICE):
                self._write(text[start:start + _SLICE], deadline)
            self._write("\n" + tail, deadline)
        except TimeoutError:  # the session stopped reading: as a step past its deadline
            self.kill()
            return StepResult(-1, "", "\nTimeout Error")
        except (BrokenPipeError, OSError):
            pass  # the session ended: reading reports how
        return self._wait(deadline)

    def _write(self, data: str, deadline: float) -> None:
        """All of `data`, or TimeoutError: a session that stops reading must not block us."""
        assert self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        left = memoryview(data.encode())
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([], [fd], [], wait)[1]:
                raise TimeoutError
            try:
                left = left[os.write(fd, left):]
            except BlockingIOError:
                continue

    def _wait(self, deadline: float) -> StepResult:
        """Read both pipes until both markers, the session's end, or the deadline."""
        out, err = bytearray(), bytearray()
        marker: re.Match[bytes] | None = None
        done_out = False
        with selectors.DefaultSelector() as sel:
            for pipe in (self._proc.stdout, self._proc.stderr):
                assert pipe is not None
                sel.register(pipe, selectors.EVENT_READ)
            while not (done_out and marker) and sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    return _result(-1, out, err + b"\nTimeout Error")
                for key, _ in sel.select(min(left, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is self._proc.stdout:
                        out += chunk
                    else:
                        err += chunk
                done_out = done_out or _EOF_OUT in out
                marker = _EOF_ERR.search(err)
        if marker is None or not done_out:
            # The session ended first: ssh could not connect, or the shell exited. The MAD
            # learns it from `; echo ExitSSHCode: $?` after ssh and answers ssh's code, so a
            # shell that exits 0 mid-step passes there; here that is a failure (-1), and the
            # text names the exit code, as this class does not know the host's name.
            try:
                rc = self._proc.wait(timeout=_CLOSE_WAIT)
            except subprocess.TimeoutExpired:  # its pipes closed, yet it goes on: end it
                self.kill()
                rc = self._proc.returncode
            self._alive = False
            ended = f"\nError connecting to stream (exit {rc})".encode()
            return _result(rc or -1, out, err + ended)
        return _result(int(marker.group(1) or -1), out[:out.index(_EOF_OUT)], err[:marker.start()])

    def kill(self) -> None:
        """The whole session, as the MAD does on a timeout (HUP to the group), then KILL."""
        self._alive = False
        for sig in (signal.SIGHUP, signal.SIGKILL):
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self._proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                continue
        self._proc.wait(timeout=_CLOSE_WAIT)
        self._close_pipes()

    def close(self) -> None:
        """`\\nexit` as the MAD's close; kill the session if it does not end in time."""
        if self._proc.poll() is None and self._alive:
            try:
                self._write("\nexit\n", time.monotonic() + _CLOSE_WAIT)
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):  # TimeoutError too: the wait below ends it
                pass
            try:
                self._proc.wait(timeout=_CLOSE_WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
        self._alive = False
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass


def _result(code: int, out: bytes, err: bytes) -> StepResult:
    stderr = err.decode("utf-8", "replace")
    return StepResult(code, out.decode("utf-8", "replace"), stderr, logs=tuple(_logs(stderr)))


def oned_message(result: StepResult) -> str:
    """The info the MAD sends oned for a failed step (OpenNebula 7.x): ssh_stream.rb cuts only
    " EOF_ERR" off the marker, so the stderr it parses ends with the line `ExitCode: <code>`."""
    return error_message_7x(f"{result.stderr}ExitCode: {result.code}")


__all__ = ["MAGIC_RC", "SshStream", "oned_message"]
