"""prereconfigure and reconfigure, as OpenNebula's kvm driver: the context CD-ROM of a running VM.

For update_conf one_vmm_exec.rb runs prereconfigure, the TM's context action (which
writes the new ISO) and reconfigure, on the host:
  prereconfigure <deploy id> <target> <vmid> <host>: eject the CD-ROM at <target>
    (`virsh change-media --eject --force`); already empty is success;
  reconfigure <deploy id> <target> <iso path> <vmid> <host>: insert the ISO there
    (`virsh change-media --insert`).
oned quotes each argument; an empty target or path (a VM without context) does nothing, as
the stock scripts. The ISO path must lie on the datastores, and the target must be one of the
domain's CD-ROMs: a tenant cannot swap a disk this way.
"""

from __future__ import annotations

import copy
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence, TextIO

import libvirt

from onemetal import config
from onemetal.errors import InputError
from onemetal.storage.datastores import inside
from onemetal.vmm.connection import VmmError
from onemetal.vmm.deploy import connection, find_domain
from onemetal.vmm.deploy_ids import checked

TARGET = re.compile(r"[a-z]{2,3}[a-z0-9]{1,4}")  # hda, sdb, vdaa: LibVirtDriverKVM's targets
FORCE = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE


def _args(args: Sequence[str], count: int, usage: str) -> list[str] | None:
    """The first `count` arguments checked; None when one is empty (nothing to do)."""
    values = [*args[:count], *[""] * (count - len(args))]
    if not all(values):
        return None
    checked(values[0])
    if not TARGET.fullmatch(values[1]):
        raise InputError(f"{values[1]!r} is not a disk target ({usage})", "target")
    return values


def _change_media(deploy: str, target: str, iso: str | None) -> None:
    """The CD-ROM at `target` emptied (iso None) or loaded with `iso`, on the live domain."""
    from lxml import etree  # only a CD-ROM to change pays lxml, not a VM without context

    from onemetal.vmm import domain_xml

    conn = connection(config.load())
    try:
        dom: Any = find_domain(conn, deploy)
        if dom is None:
            raise VmmError("no such domain on this host", deploy)
        live = domain_xml.parse(conn.run("read the domain XML", deploy, lambda _c: dom.XMLDesc(0)))
        found = [d for d in live.iterfind("devices/disk")
                 if d.find("target") is not None and d.find("target").get("dev") == target]
        if not found or found[0].get("device") != "cdrom":
            raise InputError(f"{target!r} is not a CD-ROM of {deploy}", "target")
        disk = copy.deepcopy(found[0])
        for source in disk.findall("source"):
            disk.remove(source)
        if iso is None and found[0].find("source") is None:
            return  # already ejected, as the stock script says
        if iso is not None:
            disk.set("type", "file")
            disk.insert(0, etree.Element("source", file=iso))
        xml = etree.tostring(disk, encoding="unicode")
        what = "eject the CD-ROM" if iso is None else "insert the CD-ROM"
        conn.run(what, deploy, lambda _c: dom.updateDeviceFlags(xml, FORCE))
    finally:
        conn.close()


def prereconfigure(args: Sequence[str], stdin: TextIO) -> None:
    values = _args(args, 2, "prereconfigure <deploy id> <target>")
    if values is not None:
        _change_media(values[0], values[1], None)


def reconfigure(args: Sequence[str], stdin: TextIO) -> None:
    values = _args(args, 3, "reconfigure <deploy id> <target> <iso path>")
    if values is not None:
        iso = inside(values[2], config.load().storage.datastores_dir, "iso path")
        _change_media(values[0], values[1], iso)
