"""Touch a mounted file system only from a child process that the action stops waiting for.

On a hard NFS mount whose server is gone, statvfs or a listing blocks in the
kernel (state D) and no signal ends it. So every such call runs in a forked
child that writes its answer to a pipe; the parent waits at most the deadline,
then reports the share as not answering and leaves the child behind: it is
killed (SIGKILL takes effect once the kernel call returns) and reaped by init
after the action exits. A driver action never hangs on its datastore.
"""

from __future__ import annotations

# marshal, not json: built into the interpreter (json costs re and its own modules at every
# monitor), and what it reads comes only from this process's own child
import marshal
import os
import select
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

from onemetal.errors import OneMetalError

_MAX_ANSWER = 1 << 20


class ProbeTimeout(OneMetalError):
    """The file system did not answer within the deadline (a hung NFS server)."""


class ProbeFailed(OneMetalError):
    """The call failed in the child (the path is missing, permission denied, ...)."""


def _child(call: Callable[[], Any], out: int) -> None:
    try:
        answer = {"ok": call()}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    data = marshal.dumps(answer)[:_MAX_ANSWER]
    while data:
        data = data[os.write(out, data):]


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes, or None if the deadline passes first."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int, wait: float) -> None:
    """Collect the killed child if it dies at once; a child stuck in the kernel is left to init."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.005)


def in_child(call: Callable[[], Any], timeout: float, what: str) -> Any:
    """`call()` run in a forked child; its answer (built-in types only), or ProbeTimeout after
    `timeout` s."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave without running the parent's cleanup
        os.close(read_end)
        try:
            _child(call, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        data = _read_until(read_end, time.monotonic() + timeout)
    finally:
        os.close(read_end)
    if data is None:
        import signal  # only a share that does not answer needs it

        os.kill(pid, signal.SIGKILL)  # pending until a blocked kernel call returns
        _reap(pid, 0.1)
        raise ProbeTimeout(f"did not answer within {timeout:g} s (is the NFS server reachable?)",
                           field=what)
    os.waitpid(pid, 0)
    answer = marshal.loads(data) if data else {"error": "the probe died without an answer"}
    if "error" in answer:
        raise ProbeFailed(answer["error"], field=what)
    return answer["ok"]


def _statvfs(path: str, create: bool = False) -> dict[str, int]:
    try:
        st = os.statvfs(path)
    except FileNotFoundError:
        if not create:
            raise
        # A first monitor of a new datastore makes its directory, as the stock drivers do;
        # asking first keeps a dead share's EIO from turning into makedirs' EEXIST.
        os.makedirs(path, exist_ok=True)
        st = os.statvfs(path)
    return {"total": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize,
            "used": (st.f_blocks - st.f_bfree) * st.f_frsize}


def space(path: str, timeout: float, create: bool = False) -> dict[str, int]:
    """Bytes total, free (to unprivileged users) and used of the file system holding `path`
    (made first with `create`, in the same child)."""
    return in_child(lambda: _statvfs(path, create), timeout, path)  # type: ignore[no-any-return]
