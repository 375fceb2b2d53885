"""Run one child process to its end: pipes, a deadline, its whole group killed at the deadline.

This is what onemetal.run needs of subprocess, without the subprocess module: importing it
pulls in threading, selectors, signal's enums and locale, about 2 ms of every host action's
start-up, for actions that run a few short commands. os.posix_spawn (vfork and exec, as
subprocess itself uses when it can) and select.poll are enough.
"""

from __future__ import annotations

import os
import select
import time

# signal's C core: the names without the enum classes `signal` builds on import.
import _signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Sequence

_CHUNK = 1 << 16
# Python ignores SIGPIPE and an ignored signal stays ignored across exec: give the
# child the defaults, as subprocess does (its restore_signals).
_RESTORED = (_signal.SIGPIPE, _signal.SIGXFSZ)


class Deadline(Exception):
    """The child ran past its deadline and its process group was killed."""

    def __init__(self, out: bytes, err: bytes) -> None:
        super().__init__("deadline")
        self.out, self.err = out, err


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, _signal.SIGKILL)
    except ProcessLookupError:
        pass


def _candidates(program: str, env: Mapping[str, str]) -> list[str]:
    """Where exec would look for `program`: the PATH of the child's environment, as execvpe."""
    if "/" in program:
        return [program]
    return [os.path.join(d, program) for d in os.get_exec_path(env)]


def _spawn(argv: Sequence[str], env: Mapping[str, str], actions: list[tuple]) -> int:
    denied: OSError | None = None
    for path in _candidates(argv[0], env):
        try:
            return os.posix_spawn(path, argv, env, file_actions=actions, setsid=True,
                                  setsigdef=_RESTORED)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:  # execvp goes on and reports EACCES only at the end
            denied = denied or exc
    if denied:
        raise denied
    raise FileNotFoundError(2, "No such file or directory", argv[0])


def _pump(stdin: bytes | None, w_in: int | None, r_out: int, r_err: int,
          deadline: float) -> tuple[bytes, bytes, bool]:
    """Feed stdin and read both pipes until both close or the deadline; True if it passed.
    Closes `w_in`."""
    chunks: dict[int, list[bytes]] = {r_out: [], r_err: []}
    poller = select.poll()
    poller.register(r_out, select.POLLIN)
    poller.register(r_err, select.POLLIN)
    view = memoryview(stdin or b"")
    if w_in is not None:
        os.set_blocking(w_in, False)
        poller.register(w_in, select.POLLOUT)
    open_reads, late = 2, False
    try:
        while open_reads and not late:
            left = deadline - time.monotonic()
            late = left <= 0
            for fd, _event in [] if late else poller.poll(left * 1000):
                if fd != w_in:
                    data = os.read(fd, _CHUNK)
                    chunks[fd].append(data)
                    if not data:
                        poller.unregister(fd)
                        open_reads -= 1
                    continue
                try:
                    view = view[os.write(fd, view[:_CHUNK]):]
                except BlockingIOError:
                    continue
                except BrokenPipeError:  # the child stopped reading: what it read is its answer
                    view = view[:0]
                if not view:
                    poller.unregister(fd)
                    os.close(fd)
                    w_in = None
    finally:
        if w_in is not None:
            os.close(w_in)
    return b"".join(chunks[r_out]), b"".join(chunks[r_err]), late


def _wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def run(argv: Sequence[str], stdin: bytes | None, env: Mapping[str, str] | None,
        timeout: float, reap: float) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of `argv` in a session of its own, stdin from `stdin`
    (/dev/null when None). At `timeout` the group is killed, the pipes are read for `reap`
    more seconds at most (a daemon that left the group may hold them) and Deadline is raised."""
    fds: list[int] = []
    try:
        r_out, w_out = os.pipe()
        fds += [r_out, w_out]
        r_err, w_err = os.pipe()
        fds += [r_err, w_err]
        actions: list[tuple] = [(os.POSIX_SPAWN_DUP2, w_out, 1), (os.POSIX_SPAWN_DUP2, w_err, 2)]
        w_in = None
        if stdin is None:
            actions.insert(0, (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
        else:
            r_in, w_in = os.pipe()
            fds += [r_in, w_in]
            actions.insert(0, (os.POSIX_SPAWN_DUP2, r_in, 0))
        pid = _spawn(argv, os.environ if env is None else env, actions)
        for fd in fds[:]:
            if fd not in (r_out, r_err):
                fds.remove(fd)
                if fd != w_in:  # _pump closes it
                    os.close(fd)
        try:
            out, err, late = _pump(stdin, w_in, r_out, r_err, time.monotonic() + timeout)
            if late:
                kill_group(pid)
                more_out, more_err, _ = _pump(None, None, r_out, r_err, time.monotonic() + reap)
                out, err = out + more_out, err + more_err
        except BaseException:
            kill_group(pid)
            _wait(pid)
            raise
        code = _wait(pid)
        if late:
            raise Deadline(out, err)
        return code, out, err
    finally:
        for fd in fds:
            os.close(fd)
