"""shutdown, reboot and reset, as OpenNebula's kvm driver (src/vmm_mad/remotes/kvm/).

Each gets `<deploy id> <host> <vmid> <host>` (one_vmm_exec.rb) and prints nothing.
shutdown asks the guest to power off by ACPI and waits up to [vmm] shutdown_timeout
for the domain to go, asking once more half way (as the stock script does, for a
guest that missed the first event); then it destroys it (kvmrc's FORCE_DESTROY=yes)
and says so on stderr. A domain already gone is success. reboot and reset are
libvirt's reboot (the guest's ACPI) and reset (a hard reset), failing when the
domain does not exist.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence, TextIO

from onemetal import config
from onemetal.opennebula.protocol import log
from onemetal.vmm.connection import Connection, VmmError, no_domain
from onemetal.vmm.deploy import connection, destroy_domain, find_domain
from onemetal.vmm.deploy_ids import checked

POLL_INTERVAL = 0.5  # seconds between two looks at a shutting-down domain


def deploy_id(args: Sequence[str], index: int = 0) -> str:
    """The deploy id at args[index]: a UUID (what deploy printed) or a name one-<VMID>."""
    return checked(args[index] if len(args) > index else "")


def existing(conn: Connection, did: str) -> Any:
    """The domain, or VmmError when libvirt has none of that id."""
    dom = find_domain(conn, did)
    if dom is None:
        raise VmmError("no such domain", did)
    return dom


def is_active(conn: Connection, dom: Any, did: str) -> bool:
    """Whether the domain still runs; a transient domain that shut down is gone altogether."""
    def active(_c: Any) -> bool:
        try:
            return bool(dom.isActive())
        except Exception as exc:
            if no_domain(exc):
                return False
            raise
    return conn.run("check state", did, active)


def _ask_acpi(conn: Connection, dom: Any, did: str) -> None:
    def ask(_c: Any) -> None:
        try:
            dom.shutdown()
        except Exception as exc:  # gone before it was asked: what shutdown wants
            if not no_domain(exc):
                raise
    conn.run("shutdown", did, ask)


def wait_acpi(conn: Connection, dom: Any, did: str, timeout: float) -> bool:
    """ACPI shutdown within `timeout` seconds: True when the guest went by itself."""
    _ask_acpi(conn, dom, did)
    begin = time.monotonic()
    asked_again = False
    while time.monotonic() - begin < timeout:
        if not is_active(conn, dom, did):
            return True
        if not asked_again and time.monotonic() - begin >= timeout / 2:
            asked_again = True
            try:
                _ask_acpi(conn, dom, did)
            except VmmError:
                pass  # best effort: the guest may be powering off already ("not running")
        time.sleep(min(POLL_INTERVAL, max(0.0, timeout - (time.monotonic() - begin))))
    return not is_active(conn, dom, did)


def shutdown(args: Sequence[str], stdin: TextIO) -> None:
    did = deploy_id(args)
    cfg = config.load()
    conn = connection(cfg)
    try:
        dom = find_domain(conn, did)
        if dom is None:
            return None  # the stock script exits 0 when dominfo finds nothing
        begin = time.monotonic()
        timeout = cfg.vmm.shutdown_timeout
        if wait_acpi(conn, dom, did, timeout):
            log("INFO", "shutdown", f"{did}: shut down by ACPI in {time.monotonic() - begin:.1f} s")
            return None
        destroy_domain(conn, did)
        if find_domain(conn, did) is not None:
            raise VmmError("still present after destroy", did)
        log("WARN", "shutdown", f"{did}: no ACPI shutdown within {timeout:g} s "
                                f"(vmm.shutdown_timeout); destroyed it")
        return None
    finally:
        conn.close()


def _restart(args: Sequence[str], what: str, fn: Callable[[Any], Any]) -> None:
    did = deploy_id(args)
    conn = connection(config.load())
    try:
        dom = existing(conn, did)
        conn.run(what, did, lambda _c: fn(dom))
    finally:
        conn.close()


def reboot(args: Sequence[str], stdin: TextIO) -> None:
    _restart(args, "reboot", lambda dom: dom.reboot(0))


def reset(args: Sequence[str], stdin: TextIO) -> None:
    _restart(args, "reset", lambda dom: dom.reset(0))
