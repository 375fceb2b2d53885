"""A migrating domain's libvirt snapshots, as the stock migrate handles them.

libvirt refuses to migrate a domain that has snapshots, so their metadata is
dropped on the source first (the snapshots stay in the qcow2 images) and
redefined after on the destination, or back on the source when the migration
failed, from the <name>.xml that snapshot_create keeps of each in the VM's
directory (onemetal.vmm.snapshots). Every file is read before anything changes.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

import libvirt

from onemetal.errors import InputError
from onemetal.vmm.connection import Connection

MAX_BYTES = 1 << 20  # a snapshot's XML holds the domain's: a few kB


def saved(conn: Connection, dom: Any, name: str, directory: str | None
          ) -> tuple[dict[str, str], str | None]:
    """({snapshot name: its XML file's text}, the current one); InputError when one has none."""
    names = conn.run("list snapshots", name, lambda _c: dom.snapshotListNames(0))
    if not names:
        return {}, None
    texts = {}
    for snap in names:
        path = os.path.join(directory or "", f"{snap}.xml")
        try:
            with open(path, encoding="utf-8") as f:
                texts[snap] = f.read(MAX_BYTES)
        except OSError as exc:
            raise InputError(f"snapshot {snap}: cannot read {path} to redefine it after the "
                             f"migration ({exc.strerror or exc})", name) from None
    current = None
    if conn.run("look up current snapshot", name, lambda _c: dom.hasCurrentSnapshot(0)):
        current = conn.run("look up current snapshot", name,
                           lambda _c: dom.snapshotCurrent(0).getName())
    return texts, current


def drop(conn: Connection, dom: Any, name: str, texts: dict[str, str]) -> None:
    for snap in texts:
        conn.run(f"drop snapshot {snap} metadata", name, lambda _c: dom.snapshotLookupByName(
            snap, 0).delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY))


def redefine(conn: Connection, name: str, texts: dict[str, str], current: str | None) -> None:
    """Each snapshot again on `conn`'s domain, the current one marked so."""
    dom = conn.lookup(name)
    for snap, xml in texts.items():
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        if snap == current:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
        conn.run(f"redefine snapshot {snap}", name,
                 lambda _c: dom.snapshotCreateXML(xml, flags))
