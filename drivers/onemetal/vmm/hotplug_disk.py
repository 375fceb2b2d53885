"""attach_disk and detach_disk, as OpenNebula's kvm driver (src/vmm_mad/remotes/kvm/).

attach_disk <deploy id> <disk target path> <target> <target index> <drv message> <vmid> <host>,
the action XML on stdin: the <disk> is built from the DISK with ATTACH=YES as the
stock script does (type, driver, cache, io, discard, readonly, shareable, boot order,
a SCSI target's drive address), its source the path oned's TM just prepared.
detach_disk <deploy id> <source> <target> <target index> <vmid> <host>: the disk on that
target goes; the action fails if the domain still holds it afterwards.

TARGET and every attribute are the tenant's: each is checked against what libvirt
accepts, and the source (the TM's disk.<i>, possibly a symlink) must resolve under the
datastores, before libvirt is asked.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

    from onemetal.opennebula.xmltree import Element
    from onemetal.vmm.hotplug import Live

from onemetal.errors import InputError
from onemetal.storage.datastores import inside
from onemetal.vmm.hotplug import Domain, action_data, attached, device_text, vm_of, xml_text
from onemetal.vmm.lifecycle import deploy_id

TARGET = re.compile(r"(vd|sd|hd)[a-z]{1,2}")
CHOICES = {"DRIVER": ("raw", "qcow2"),
           "CACHE": ("default", "none", "writethrough", "writeback", "directsync", "unsafe"),
           "IO": ("native", "threads", "io_uring"), "DISCARD": ("ignore", "unmap")}
DEVICES = {"": "disk", "FILE": "disk", "FS": "disk", "CDROM": "cdrom"}
USAGE = ("attach_disk <deploy id> <disk target path> <target> <target index> <drv message> "
         "<vmid> <host>")


def target_name(raw: str, field: str) -> str:
    if not TARGET.fullmatch(raw):
        raise InputError(f"{raw!r} is not a disk target libvirt names (vd*, sd*, hd*: two "
                         f"letters at most)", field)
    return raw


def _value(disk: Element, key: str, field: str) -> str:
    raw = (disk.findtext(key) or "").strip()
    if raw and raw.lower() not in CHOICES[key]:
        raise InputError(f"{raw!r} is not one of {', '.join(CHOICES[key])}", f"{field}/{key}")
    return raw.lower()


def _yes(disk: Element, key: str) -> bool:
    return (disk.findtext(key) or "").strip().upper() == "YES"


def source_path(raw: str, datastores: str) -> str:
    """The TM's disk path and, for a disk.<i> symlink (ln), what it points to: both inside
    the datastores (libvirt opens the file as the guest's disk)."""
    path = inside(raw, datastores, "DISK_TARGET_PATH")
    real = inside(os.path.realpath(path), datastores, "DISK_TARGET_PATH (resolved)")
    if not os.path.isfile(real):
        raise InputError(f"{real} is not a file (the TM prepares it before attach_disk)",
                         "DISK_TARGET_PATH")
    return real


def disk_xml(disk: Element, source: str, target: str) -> str:
    """The <disk> of attach_disk (src/vmm_mad/remotes/kvm/attach_disk), every value checked."""
    field = f"DISK[DISK_ID={(disk.findtext('DISK_ID') or '').strip()}]"
    kind = (disk.findtext("TYPE") or "").strip().upper()
    if kind not in DEVICES:
        raise InputError(f"{kind!r} is not supported by onemetal (file disks and CD-ROMs)",
                         f"{field}/TYPE")
    device = DEVICES[kind]
    driver = "raw" if device == "cdrom" else (_value(disk, "DRIVER", field) or "raw")
    attrs = {"name": "qemu", "type": driver, "cache": _value(disk, "CACHE", field) or "default"}
    for key in ("IO", "DISCARD"):
        if value := _value(disk, key, field):
            attrs[key.lower()] = value
    elem = ET.Element("disk", type="file", device=device)
    ET.SubElement(elem, "driver", attrs)
    ET.SubElement(elem, "source", file=source)
    ET.SubElement(elem, "target", dev=target)
    order = (disk.findtext("ORDER") or "").strip()
    if order:
        if not order.isdigit() or not 0 < int(order) < 1000:
            raise InputError(f"{order!r} is not a boot order (1-999)", f"{field}/ORDER")
        ET.SubElement(elem, "boot", order=order)
    if _yes(disk, "READONLY") or device == "cdrom":
        ET.SubElement(elem, "readonly")
    if _yes(disk, "SHAREABLE"):
        ET.SubElement(elem, "shareable")
    # as the stock script: sdX on SCSI controller 0 at target X (sda 0, sdz 25, sdaa 26), < 256
    number = sum((ord(c) - 96) * 26 ** i for i, c in enumerate(reversed(target[2:]))) - 1
    if target.startswith("sd") and number < 256:
        ET.SubElement(elem, "address", type="drive", controller="0", bus="0",
                      target=str(number), unit="0")
    return xml_text(elem)


def _on_target(live: Live, target: str) -> Live | None:
    for disk in live.iterfind("devices/disk"):
        found = disk.find("target")
        if found is not None and found.get("dev") == target:
            return disk
    return None


def attach_disk(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    if len(args) < 3:
        raise InputError(f"missing: {USAGE}", "argv")
    disk = attached(vm_of(action_data(stdin)), "DISK")
    target = target_name(args[2], "target")
    wanted = (disk.findtext("TARGET") or "").strip()
    if wanted != target:
        raise InputError(f"{wanted!r} is not the target oned passed ({target})",
                         "DISK[ATTACH=YES]/TARGET")
    with Domain(deploy) as domain:
        xml = disk_xml(disk, source_path(args[1], domain.cfg.storage.datastores_dir), target)
        if _on_target(domain.live(), target) is not None:
            raise InputError(f"{target} is already a disk of {domain.name}", "target")
        domain.attach(xml)


def detach_disk(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    target = target_name(args[2] if len(args) > 2 else "", "target")
    with Domain(deploy) as domain:
        disk = _on_target(domain.live(), target)
        if disk is None:
            raise InputError(f"{domain.name} has no disk on {target}", "target")
        domain.detach(device_text(disk), lambda live: _on_target(live, target) is None)
