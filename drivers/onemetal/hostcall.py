"""Entry points the frontend runs on a host over SSH: `<remote_dir>/onemetal/call <entry> [args]`.

Each entry reads stdin, returns what goes to stdout, and fails with OpenNebula's
error protocol, like any remote script. Modules are imported only for the entry
that runs, so a host pays for nothing else.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Sequence, TextIO

from onemetal.opennebula.protocol import report_error, run_action

ENTRIES = {
    "describe-vm": "onemetal.opennebula.describe:entry",
    "mesh-peers": "onemetal.net.mesh:entry",
    "mesh-health": "onemetal.net.health:entry",
    "mount-ensure": "onemetal.storage.mount_ensure:entry",
    "nat-apply": "onemetal.nat.apply:entry",
    "storage-doctor": "onemetal.storage.doctor:entry",
    "host-doctor": "onemetal.doctor.host:entry",
    "vnm-pre": "onemetal.net.vnm:pre",
    "vnm-post": "onemetal.net.vnm:post",
    "vnm-clean": "onemetal.net.vnm:clean",
    "vnm-update_sg": "onemetal.net.vnm:update_sg",
    "vnm-update_nic": "onemetal.net.vnm:update_nic",
    "vnm-vnet_create": "onemetal.net.vnet:create",
    "vnm-vnet_delete": "onemetal.net.vnet:delete",
    "vmm-deploy": "onemetal.vmm.deploy:deploy",
    "vmm-cancel": "onemetal.vmm.deploy:cancel",
    "vmm-attach_disk": "onemetal.vmm.hotplug_disk:attach_disk",
    "vmm-detach_disk": "onemetal.vmm.hotplug_disk:detach_disk",
    "vmm-attach_nic": "onemetal.vmm.hotplug_nic:attach_nic",
    "vmm-detach_nic": "onemetal.vmm.hotplug_nic:detach_nic",
    "vmm-resize": "onemetal.vmm.resize:resize",
    "vmm-resize_disk": "onemetal.vmm.resize:resize_disk",
    "vmm-snapshot_create": "onemetal.vmm.snapshots:snapshot_create",
    "vmm-snapshot_revert": "onemetal.vmm.snapshots:snapshot_revert",
    "vmm-snapshot_delete": "onemetal.vmm.snapshots:snapshot_delete",
    "vmm-shutdown": "onemetal.vmm.lifecycle:shutdown",
    "vmm-reboot": "onemetal.vmm.lifecycle:reboot",
    "vmm-reset": "onemetal.vmm.lifecycle:reset",
    "vmm-save": "onemetal.vmm.save:save",
    "vmm-restore": "onemetal.vmm.save:restore",
    "vmm-migrate": "onemetal.vmm.migrate:migrate",
    "vmm-migrate_local": "onemetal.vmm.migrate:migrate_local",
    "vmm-prereconfigure": "onemetal.vmm.reconfigure:prereconfigure",
    "vmm-reconfigure": "onemetal.vmm.reconfigure:reconfigure",
    "vmm-exec": "onemetal.vmm.actions:refuse_exec",
    "vmm-exec_cancel": "onemetal.vmm.actions:refuse_exec_cancel",
    "vmm-poll": "onemetal.vmm.actions:refuse_poll",
    "tm-clone": "onemetal.storage.tm:clone",
    "tm-ln": "onemetal.storage.tm:ln",
    "tm-mkimage": "onemetal.storage.tm:mkimage",
    "tm-mkswap": "onemetal.storage.tm:mkswap",
    "tm-resize": "onemetal.storage.tm:resize",
    "tm-mv": "onemetal.storage.tm:mv",
    "tm-delete": "onemetal.storage.tm:delete",
    "tm-cpds": "onemetal.storage.tm:cpds",
    "tm-mvds": "onemetal.storage.tm:mvds",
    "tm-premigrate": "onemetal.storage.tm:migrate",
    "tm-postmigrate": "onemetal.storage.tm:migrate",
    "tm-failmigrate": "onemetal.storage.tm:migrate",
    "tm-context": "onemetal.storage.tm_context:entry",
    "tm-monitor": "onemetal.storage.tm_monitor:entry",
    "tm-snap_create": "onemetal.storage.tm:snap_create",
    "tm-snap_delete": "onemetal.storage.tm:snap_delete",
    "tm-snap_revert": "onemetal.storage.tm:snap_revert",
    "tm-host-clone": "onemetal.storage.tm_host:clone",
    "tm-host-ln": "onemetal.storage.tm_host:ln",
    "tm-host-mkimage": "onemetal.storage.tm_host:mkimage",
    "tm-host-resize": "onemetal.storage.tm_host:resize",
    "tm-host-mv": "onemetal.storage.tm_host:mv",
    "tm-host-delete": "onemetal.storage.tm_host:delete",
    "tm-host-cpds": "onemetal.storage.tm_host:cpds",
    "tm-host-context": "onemetal.storage.context_iso:entry",
    "tm-host-snap_create": "onemetal.storage.tm_snap:snap_create",
    "tm-host-snap_delete": "onemetal.storage.tm_snap:snap_delete",
    "tm-host-snap_revert": "onemetal.storage.tm_snap:snap_revert",
    "ds-cp": "onemetal.storage.ds:cp",
    "ds-mkfs": "onemetal.storage.ds:mkfs",
    "ds-clone": "onemetal.storage.ds:clone",
    "ds-stat": "onemetal.storage.ds:stat",
    "ds-monitor": "onemetal.storage.ds:monitor",
    "ds-export": "onemetal.storage.ds:export",
    "ds-rm": "onemetal.storage.ds_snap:rm",
    "ds-snap_delete": "onemetal.storage.ds_snap:snap_delete",
    "ds-snap_revert": "onemetal.storage.ds_snap:snap_revert",
    "ds-snap_flatten": "onemetal.storage.ds_snap:snap_flatten",
}


def main(argv: Sequence[str], stdin: TextIO | None = None) -> int:
    if not argv or argv[0] not in ENTRIES:
        report_error("call", f"unknown entry {argv[0] if argv else '(none)'!r}; "
                             f"known: {', '.join(sorted(ENTRIES))}")
        return 2
    name, args = argv[0], list(argv[1:])
    module, _, function = ENTRIES[name].partition(":")
    source = stdin or sys.stdin

    def body() -> str | None:
        __import__(module)  # the builtin: the importlib package is one more module to load
        return getattr(sys.modules[module], function)(args, source)

    # oned's logs name the driver's action: "pre", "cp", not the entry
    return run_action(name.removeprefix("vnm-").removeprefix("ds-").removeprefix("vmm-"), body)


def finish(code: int) -> NoReturn:
    """How a host script ends once its entry returned: every file it wrote is closed and its
    lock goes with the process, so the interpreter's teardown (about 3 ms) is skipped."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
