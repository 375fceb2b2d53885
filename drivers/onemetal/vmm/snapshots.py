"""snapshot_create, snapshot_revert and snapshot_delete, as OpenNebula's kvm driver.

snapshot_create <deploy id> <snap id> <vmid> <host>: libvirt's internal snapshot
"snap-<id>" (virsh snapshot-create-as --name: memory and qcow2 disks, in the images);
prints that name, which oned keeps as the snapshot's HYPERVISOR_ID. As the stock
script, each snapshot's XML is dumped to <system datastore>/<name>.xml (the domain's
one:system_datastore metadata), through the datastore write-gate, so migrate can
redefine it on another host.
snapshot_revert <deploy id> <hypervisor id>: revert --force. Create and revert are tried
again, 3 times 5 s apart, while libvirt says "active block job", as stock.
snapshot_delete <deploy id> <hypervisor id> <vmid> <host>: its XML file and the
snapshot go; the remaining snapshots' files are dumped again.
A hypervisor id is only ever a name snapshot_create printed: anything else is refused.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence, TextIO

import libvirt

from onemetal.errors import InputError
from onemetal.opennebula import values
from onemetal.storage.datastores import gate, inside
from onemetal.vmm.connection import VmmError, retry_if
from onemetal.vmm.hotplug import Domain
from onemetal.vmm.lifecycle import deploy_id

NAME = re.compile(r"snap-[0-9]{1,9}")
ONE_NS = "http://opennebula.org/xmlns/libvirt/1.0"


def snapshot_name(args: Sequence[str]) -> str:
    raw = args[1] if len(args) > 1 else ""
    if not NAME.fullmatch(raw):
        raise InputError(f"{raw!r} is not a snapshot name of this driver (snap-<id>)",
                         "hypervisor id")
    return raw


def _snapshot(domain: Domain, name: str) -> Any:
    def find(dom: Any) -> Any:
        try:
            return dom.snapshotLookupByName(name, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return None
            raise
    snap = domain.run("look up snapshot", find)
    if snap is None:
        raise InputError(f"{domain.name} has no snapshot {name}", "hypervisor id")
    return snap


def vm_dir(live: Any, datastores_dir: str) -> str | None:
    """The VM's directory in the system datastore, from the metadata deploy left in the live
    XML (None: none there)."""
    found = live.findtext(f"metadata/{{{ONE_NS}}}vm/{{{ONE_NS}}}system_datastore")
    if not (found or "").strip():
        return None
    return inside(found.strip(), datastores_dir, "domain metadata one:system_datastore")


def _vm_dir(domain: Domain) -> str | None:
    return vm_dir(domain.live(), domain.cfg.storage.datastores_dir)


def _dump_all(domain: Domain, vm_dir: str | None) -> None:
    """<vm dir>/<name>.xml of each snapshot, replaced whole."""
    if vm_dir is None:
        return
    names = domain.run("list snapshots", lambda d: d.snapshotListNames(0))
    gate(vm_dir, domain.cfg.storage)
    for name in names:
        if not NAME.fullmatch(name):
            continue  # not ours (made by hand): oned does not know it either
        xml = domain.run("dump snapshot", lambda d: d.snapshotLookupByName(name, 0).getXMLDesc(0))
        path = os.path.join(vm_dir, f"{name}.xml")
        temporary = f"{path}.tmp{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(xml)
        os.replace(temporary, path)


def snapshot_create(args: Sequence[str], stdin: TextIO) -> str:
    deploy = deploy_id(args)
    snap_id = values.integer(args[1] if len(args) > 1 else "", "snap id", 0, 999_999_999)
    name = f"snap-{snap_id}"
    with Domain(deploy) as domain:
        vm_dir = _vm_dir(domain)
        if vm_dir is not None:
            gate(vm_dir, domain.cfg.storage)
        xml = f"<domainsnapshot><name>{name}</name></domainsnapshot>"
        retry_if("active block job",
                 lambda: domain.run("create snapshot", lambda d: d.snapshotCreateXML(xml, 0)))
        _dump_all(domain, vm_dir)
    return name + "\n"


def snapshot_revert(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    name = snapshot_name(args)
    with Domain(deploy) as domain:
        snap = _snapshot(domain, name)
        retry_if("active block job", lambda: domain.run("revert to snapshot", lambda d: (
            d.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE))))


def snapshot_delete(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    name = snapshot_name(args)
    with Domain(deploy) as domain:
        snap = _snapshot(domain, name)
        vm_dir = _vm_dir(domain)
        if vm_dir is None:  # as the stock script: it needs the directory to keep the files right
            raise VmmError("cannot read one:system_datastore from the domain's metadata",
                           domain.name)
        gate(vm_dir, domain.cfg.storage)
        domain.run("delete snapshot", lambda _d: snap.delete(0))
        try:
            os.unlink(os.path.join(vm_dir, f"{name}.xml"))
        except FileNotFoundError:
            pass
        _dump_all(domain, vm_dir)
