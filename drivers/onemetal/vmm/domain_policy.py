"""What a deployment file may not do: the host resources it could hand a tenant, refused.

libvirtd runs as root and qemu as oneadmin, and the file carries what tenants wrote (NIC
attributes such as SCRIPT, disk and OS attributes, and RAW DATA where an administrator lets a
user set it), so anything in it that names a host executable, device, socket, file or network
endpoint is a way out of the VM. LibVirtDriverKVM.cc writes none of these for the VMs onemetal
runs (file disks on the datastores, bridge NICs, pty consoles), so each is refused, naming the
element, before anything is written or created (docs/vmm.md, "What a deployment file may not
do"). Refusing, not dropping: a VM that silently lost a device would boot as something else.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

from lxml import etree

from onemetal.errors import InputError
from onemetal.storage.datastores import inside

FIELD = "deployment file"
# The qemu binaries Debian and OpenNebula's EMULATOR default name; anything else is a program
# libvirtd would start.
EMULATOR = re.compile(r"/usr/(?:bin|libexec)/(?:qemu-system-[a-z0-9_]+|qemu-kvm|kvm)")
FIRMWARE_DIRS = ("/usr/share/OVMF", "/usr/share/AAVMF", "/usr/share/qemu", "/usr/share/seabios",
                 "/usr/lib/ipxe")
VIRTIOFSD = "/var/tmp/one/vmm/kvm/virtiofsd.sh"  # what LibVirtDriverKVM writes, synced by oned
CHAR_DEVICES = ("serial", "console", "parallel", "channel", "smartcard", "redirdev")
# pty and friends stay inside qemu or libvirt; unix, file and pipe name a path (checked below);
# dev, tcp, udp and the rest open host devices or the host's network.
CHAR_TYPES = ("pty", "null", "vc", "spicevmc", "spiceport", "unix", "file", "pipe")
INTERFACE_TYPES = ("bridge", "ethernet")  # direct, hostdev, user, vhostuser, sockets bypass OVS
RNG_SOURCES = ("/dev/random", "/dev/urandom")
WHOLE = {  # elements refused wherever they are, and why
    "hostdev": "passes a host device (PCI, USB, SCSI, mdev) to the guest",
    "shmem": "shares host memory between guests",
    "seclabel": "changes the security label or user qemu runs as",
    "script": "names a program libvirtd runs as root",
    "downscript": "names a program libvirtd runs as root",
}


def _name(elem: etree._Element) -> str:
    local = etree.QName(elem).localname
    return f"{elem.prefix}:{local}" if elem.prefix else local


def _where(elem: etree._Element) -> str:
    """The element's path below <domain>, e.g. devices/interface[1]/script (0-based, as the
    console errors of domain_xml count)."""
    steps = []
    while elem.getparent() is not None:
        same = [e for e in elem.getparent() if e.tag == elem.tag]
        steps.append(_name(elem) + (f"[{same.index(elem)}]" if len(same) > 1 else ""))
        elem = elem.getparent()
    return f"{FIELD}: {'/'.join(reversed(steps))}"


def _refuse(elem: etree._Element, why: str) -> InputError:
    return InputError(why, _where(elem))


def _under(elem: etree._Element, raw: str, bases: tuple[str, ...], what: str) -> None:
    for base in bases:
        try:
            inside(raw, base, what)
            return
        except InputError:
            continue
    raise _refuse(elem, f"{what} {raw!r} is outside {' and '.join(bases)}")


def _foreign(root: etree._Element) -> Iterator[etree._Element]:
    """Elements of another namespace (qemu:commandline, qemu:arg, ...) outside <metadata>."""
    for elem in root.iter():
        if isinstance(elem.tag, str) and elem.tag.startswith("{") and \
                not any(a.tag == "metadata" for a in elem.iterancestors()):
            yield elem


def _check_paths(root: etree._Element, datastores: str, vm_dir: str) -> None:
    """Host paths: images on the datastores, sockets, logs and char files in the VM directory."""
    for elem in root.iter():
        if not isinstance(elem.tag, str):
            continue
        if elem.tag == "source" and elem.get("dir") is not None:  # <target dir> is a mount tag
            _under(elem, elem.get("dir"), (datastores,), "@dir")
        if elem.get("file") is not None:  # an image: any datastore; qemu's own output: the VM's
            image = elem.tag == "source" and elem.getparent().tag in ("disk", "backingStore")
            _under(elem, elem.get("file"), (datastores if image else vm_dir,), "@file")
        if elem.tag == "source" and elem.get("dev") is not None:
            raise _refuse(elem, f"names the host device {elem.get('dev')!r}")
        if elem.get("evdev") is not None:
            raise _refuse(elem, f"names the host input device {elem.get('evdev')!r}")
        if elem.tag == "binary" and elem.getparent().tag == "filesystem":
            if elem.get("path") not in (None, VIRTIOFSD):
                raise _refuse(elem, f"names the program {elem.get('path')!r}; only {VIRTIOFSD}")
            continue
        for attr in ("path", "socket"):
            if elem.get(attr) is not None:
                _under(elem, elem.get(attr), (vm_dir,), f"@{attr}")
        if elem.tag == "path" and elem.getparent().tag == "source":
            _under(elem, (elem.text or "").strip(), (datastores,), "path")


def _check_os(root: etree._Element, datastores: str, vm_dir: str) -> None:
    for elem in root.iterfind("os/*"):
        text = (elem.text or "").strip()
        if elem.tag in ("kernel", "initrd", "dtb") and text:
            _under(elem, text, (datastores,), elem.tag)
        elif elem.tag == "nvram" and text:  # qemu writes it
            _under(elem, text, (vm_dir,), elem.tag)
        elif elem.tag == "loader" and text:
            _under(elem, text, (*FIRMWARE_DIRS, datastores), "loader")
        if elem.tag == "nvram" and elem.get("template") is not None:
            _under(elem, elem.get("template"), FIRMWARE_DIRS, "@template")


def _check_devices(root: etree._Element) -> None:
    for elem in root.iterfind("devices/emulator"):
        if not EMULATOR.fullmatch((elem.text or "").strip()):
            raise _refuse(elem, f"{(elem.text or '').strip()!r} is not a qemu binary")
    for elem in root.iterfind("devices/disk"):
        if elem.get("type", "file") != "file":
            raise _refuse(elem, f"type {elem.get('type')!r}: onemetal's disks are files on "
                                f"the datastores")
    for elem in root.iterfind("devices/interface"):
        if elem.get("type") not in INTERFACE_TYPES:
            raise _refuse(elem, f"type {elem.get('type')!r} bypasses the OVS bridge; only "
                                f"{', '.join(INTERFACE_TYPES)}")
        for backend in elem.iterfind("backend"):
            raise _refuse(backend, "names host tap or vhost devices")
    for tag in CHAR_DEVICES:
        for elem in root.iterfind(f"devices/{tag}"):
            if elem.get("type", "pty") not in CHAR_TYPES:
                raise _refuse(elem, f"type {elem.get('type')!r} opens a host device or "
                                    f"network endpoint")
    for elem in root.iterfind("devices/rng/backend"):
        if elem.get("model") == "random" and (elem.text or "").strip() not in ("", *RNG_SOURCES):
            raise _refuse(elem, f"reads {(elem.text or '').strip()!r}; only "
                                f"{', '.join(RNG_SOURCES)}")
        if elem.get("model") == "egd" and elem.get("type", "pty") not in CHAR_TYPES:
            raise _refuse(elem, f"type {elem.get('type')!r} opens a host device or "
                                f"network endpoint")
    for elem in root.iterfind("devices/tpm/backend"):
        if elem.get("type") != "emulator":
            raise _refuse(elem, f"type {elem.get('type')!r} passes the host's TPM through")


def check(root: etree._Element, datastores: str, vm_dir: str | None = None) -> None:
    """InputError naming the first element that would reach the host beyond the VM's own files;
    vm_dir: the VM's directory (the deployment file's), else anywhere on the datastores."""
    for elem in _foreign(root):
        raise _refuse(elem, f"<{_name(elem)}> of namespace "
                            f"{etree.QName(elem).namespace} passes raw options to the hypervisor")
    for elem in root.iter(*WHOLE):
        raise _refuse(elem, WHOLE[elem.tag])
    _check_devices(root)
    vm_dir = os.path.normpath(vm_dir or datastores)
    _check_os(root, datastores, vm_dir)
    _check_paths(root, datastores, vm_dir)
