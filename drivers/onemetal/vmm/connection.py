"""libvirt through libvirt-python, every call bounded by [vmm] call_timeout.

libvirt-python's calls block in C (they release the GIL), and a hung libvirtd
(stopped, deadlocked, its socket backlog full) never answers: the connection's
keepalive needs an event loop and only detects a dead peer. So each call runs in
a daemon thread the action waits on with join(timeout); at the deadline the
action fails and exits, and the thread dies with the process (0.1-0.25 ms a
call here, see docs/vmm.md). A libvirt error becomes one VmmError naming the
operation and the domain.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

import libvirt

from onemetal.errors import OneMetalError


class VmmError(OneMetalError):
    """A libvirt operation failed or did not answer in time; the field names the domain."""


class VmmTimeout(VmmError):
    """libvirtd did not answer within the call's timeout (the call may still go on there)."""


def _quiet(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr by default; the driver reports it once, itself."""


libvirt.registerErrorHandler(_quiet, None)


def call(fn: Callable[..., Any], *args: Any, what: str, domain: str, timeout: float) -> Any:
    """fn(*args) within `timeout` seconds, or VmmError("<what>: ...", domain)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"libvirt {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise VmmTimeout(f"{what}: libvirtd did not answer within {timeout:g} s "
                         f"(vmm.call_timeout)", domain)
    error = box.get("error")
    if isinstance(error, libvirt.libvirtError):
        raise VmmError(f"{what}: {error}", domain) from None  # str() holds the details
    if error is not None:
        raise error
    return box.get("value")


def retry_if(marker: str, fn: Callable[[], Any], tries: int = 3, wait: float = 5.0) -> Any:
    """fn(), again after `wait` s while its VmmError says `marker` (the stock scripts' retry_if:
    "active block job" while a disk job runs, "is in use"), `tries` times in all."""
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except VmmError as exc:
            if marker not in str(exc) or attempt == tries:
                raise
        time.sleep(wait)


def no_domain(error: BaseException) -> bool:
    return (isinstance(error, libvirt.libvirtError)
            and error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)


class Connection:
    """One libvirt connection of an action, opened on first use."""

    def __init__(self, uri: str, timeout: float) -> None:
        self.uri, self.timeout = uri, timeout
        self._conn: Any = None

    def _open(self, domain: str) -> Any:
        if self._conn is None:
            self._conn = call(libvirt.open, self.uri, what=f"connect to {self.uri}",
                              domain=domain, timeout=self.timeout)
        return self._conn

    def run(self, what: str, domain: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(connection, *args) as one bounded call."""
        conn = self._open(domain)
        return call(fn, conn, *args, what=what, domain=domain, timeout=self.timeout)

    def lookup(self, name: str) -> Any:
        """The domain by name, or None when libvirt has none of that name."""
        def find(conn: Any) -> Any:
            try:
                return conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if no_domain(exc):
                    return None
                raise
        return self.run("look up", name, find)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                call(conn.close, what="close", domain="", timeout=self.timeout)
            except OneMetalError:
                pass  # the action's result stands; the process exit closes the socket anyway
