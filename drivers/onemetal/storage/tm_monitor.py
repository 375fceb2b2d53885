"""The system datastore's monitor (entry tm-monitor): `monitor <ds_id>`, the action data in base64.

As the stock shared/qcow2 monitor run on the frontend (no BRIDGE_LIST): the space of
the file system holding <DATASTORE_LOCATION>/<ds_id> as `USED_MB=.. FREE_MB=.. TOTAL_MB=..`
(df -B1M: used counts what root's reserve also holds, free what oneadmin may use), the
only thing oned reads from stdout; with MONITOR_VM_DISKS=1, the sizes of each VM's
disk.<i> files and their snapshots (du -mL) go to monitord (storage/tm_monitord.py). Every
look at the share runs through storage.probe with storage.probe_timeout: a hung
NFS server fails the monitor within the deadline instead of stalling it.
"""

from __future__ import annotations

import base64
import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal import config
from onemetal.opennebula.payload import read_payload
from onemetal.storage import probe, tm_args
from onemetal.storage.datastores import gate, inside

_MB = 1 << 20
_DISK = re.compile(r"disk\.(\d+)\Z")


def _mb_used(path: str) -> int:
    """du -mL: the blocks the file holds, in MiB rounded up."""
    return -(-os.stat(path).st_blocks * 512 // _MB)


def _vm_disks(vm_dir: str) -> list[str]:
    """One VM's DISK_SIZE and SNAPSHOT_SIZE entries, as the stock monitor writes them."""
    out: list[str] = []
    for name in sorted(os.listdir(vm_dir)):
        disk = _DISK.match(name)
        if not disk:
            continue
        path = os.path.join(vm_dir, name)
        out.append(f"DISK_SIZE = [ ID={disk.group(1)}, SIZE={_mb_used(path)}]")
        snaps = path + ".snap"
        if os.path.isdir(snaps):
            # All ids: the stock script greps one digit and so drops snapshots from 10 on.
            for snap in sorted((s for s in os.listdir(snaps) if s.isdigit()), key=int):
                out.append(f"SNAPSHOT_SIZE = [ ID={snap}, DISK_ID={disk.group(1)}, "
                           f"SIZE={_mb_used(os.path.join(snaps, snap))}]")
    return out


def vm_sizes(base: str) -> dict[str, list[str]]:
    vms = sorted((name for name in os.listdir(base) if name.isdigit()), key=int)
    return {vm: _vm_disks(os.path.join(base, vm)) for vm in vms
            if os.path.isdir(os.path.join(base, vm))}


def entry(args: Sequence[str], stdin: TextIO) -> str:
    tm_args.expect(list(args), ("DS_ID",), "tm-monitor")
    ds_id = tm_args.number(args[0], "DS_ID")
    cfg = config.load()
    data = read_payload(stdin.read(), "stdin", root="DS_DRIVER_ACTION_DATA")
    location = data.findtext("DATASTORE_LOCATION") or cfg.storage.datastores_dir
    base = inside(f"{location}/{ds_id}", cfg.storage.datastores_dir, "DATASTORE_LOCATION")
    gate(base, cfg.storage)  # the monitor creates the directory, as the stock one does
    timeout = cfg.storage.probe_timeout
    space = probe.space(base, timeout, create=True)
    lines = [f"USED_MB={space['used'] // _MB} FREE_MB={space['free'] // _MB} "
             f"TOTAL_MB={space['total'] // _MB}"]
    if (data.findtext("MONITOR_VM_DISKS") or "").strip() == "1":
        from onemetal.storage import tm_monitord

        tm_monitord.send(vm_lines(probe.in_child(lambda: vm_sizes(base), timeout, base)))
    return "\n".join(lines) + "\n"


def vm_lines(sizes: dict[str, list[str]]) -> list[str]:
    """`VM=[ID=<vm>, MONITOR="<base64>"]` per VM with disks: what monitord's MONITOR_VM reads."""
    return [f'VM=[ID={vm}, MONITOR="{base64.b64encode(" ".join(disks).encode()).decode()}"]'
            for vm, disks in sizes.items() if disks]
