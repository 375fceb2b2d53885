"""save and restore, as OpenNebula's kvm driver (src/vmm_mad/remotes/kvm/save, restore).

save <deploy id> <checkpoint> <host> <vmid> <host>: libvirt writes the domain's
memory and XML to the checkpoint on the system datastore (the write-gate first)
and the domain is gone. An older checkpoint there is moved to <checkpoint>.<epoch>,
as the stock script does.

restore <checkpoint> <host> <deploy id> <vmid> <host>: the checkpoint's XML is read
back and treated as any deployment file (onemetal.vmm.domain_xml: the enforced MTUs,
consoles on [vmm] graphics_listen only), because whoever could write the file could
have put a 0.0.0.0 console in it; its disk paths are moved to the checkpoint's system
datastore (the stock script's sed, for a VM that changed datastore while stopped).
libvirt restores it with that XML, the checkpoint is removed and the output is the
domain's UUID, the same deploy id as before the save. A domain of that name already
running is reported; one suspended by the guest (pmsuspended) is woken, as stock.
"""

from __future__ import annotations

import os
import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence, TextIO

import libvirt

from onemetal import config
from onemetal.errors import InputError, OneMetalError
from onemetal.storage.datastores import datastore_id, gate, inside
from onemetal.vmm.connection import Connection, VmmError, retry_if
from onemetal.vmm.deploy import connection, port_mtus
from onemetal.vmm.lifecycle import deploy_id, existing, is_active

FIELD = "checkpoint file"
# The stock save retries "active block job" errors (a disk snapshot still running) 3 times, 5 s apart.
BLOCK_JOB_TRIES = 3
BLOCK_JOB_WAIT = 5.0


def _set_aside(path: str) -> str | None:
    """An older checkpoint moved to <path>.<epoch>; its new name."""
    if not os.path.lexists(path):
        return None
    aside = f"{path}.{int(time.time())}"
    os.replace(path, aside)
    return aside


def _save(conn: Connection, dom: Any, did: str, path: str) -> None:
    retry_if("active block job", lambda: conn.run("save", did, lambda _c: dom.save(path)),
             BLOCK_JOB_TRIES, BLOCK_JOB_WAIT)


def _undo(conn: Connection, dom: Any, did: str, path: str, aside: str | None) -> None:
    """A failed save: back to the old checkpoint, but only while the domain still runs (after
    a timeout libvirt may still be writing the only copy of the VM's state)."""
    try:
        if not is_active(conn, dom, did):
            return
    except OneMetalError:
        return
    if os.path.lexists(path):
        os.unlink(path)
    if aside is not None:
        os.replace(aside, path)


def save(args: Sequence[str], stdin: TextIO) -> None:
    did = deploy_id(args)
    cfg = config.load()
    path = inside(args[1] if len(args) > 1 else "", cfg.storage.datastores_dir, FIELD)
    conn = connection(cfg)
    try:
        dom = existing(conn, did)
        gate(path, cfg.storage)
        aside = _set_aside(path)
        try:
            # oneadmin's file, as the stock script's touch: libvirt may write it as the qemu user
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            _save(conn, dom, did, path)
        except BaseException:
            _undo(conn, dom, did, path, aside)
            raise
    finally:
        conn.close()


def relocate(xml: str, base: str, path: str, vmid: str) -> str:
    """Paths of the VM's directory in any system datastore moved to the checkpoint's one
    (`//` as oned writes them matched too)."""
    here = os.path.dirname(path)
    parts = [re.escape(p) for p in base.split("/") if p]
    pattern = re.compile("/+" + "/+".join(parts) + r"/+[0-9]+/+" + re.escape(vmid) + "/")
    return pattern.sub(lambda _m: here + "/", xml)


def _checkpoint(args: Sequence[str], cfg: config.Config) -> tuple[str, str]:
    """(checkpoint path, vmid): the path must be in the VM's directory <dir>/<ds>/<vmid>/."""
    path = inside(args[0] if args else "", cfg.storage.datastores_dir, FIELD)
    vmid = args[3] if len(args) > 3 else ""
    if not vmid.isdigit():
        raise InputError(f"{vmid!r} is not a VM id", "vmid")
    vm_dir = os.path.dirname(path)
    if (datastore_id(path, cfg.storage) is None or os.path.basename(vm_dir) != vmid
            or os.path.dirname(os.path.dirname(vm_dir)) != os.path.normpath(
                cfg.storage.datastores_dir)):
        raise InputError(f"{path} is not in VM {vmid}'s directory "
                         f"{cfg.storage.datastores_dir}/<datastore>/{vmid}/", FIELD)
    return path, vmid


def guest_mtus(saved: str, enforced: Mapping[str, int]) -> dict[str, int]:
    """The MTU each port keeps: libvirt refuses to change a guest's MTU on restore (it is part of
    the machine's ABI), so a saved MTU at most the enforced one stays; one above it (or none: the
    guest's 1500) would send frames the underlay drops, and is refused before anything changes."""
    from onemetal.vmm import domain_xml  # lxml: restore's, not save's

    kept = {}
    for iface in domain_xml.parse(saved).iterfind("devices/interface"):
        target, mtu = iface.find("target"), iface.find("mtu")
        dev = target.get("dev") if target is not None else None
        if dev not in enforced:
            continue
        size = mtu.get("size", "") if mtu is not None else ""
        if not size.isdigit() or int(size) > enforced[dev]:
            raise InputError(f"the checkpoint's guest MTU is {size or 'unset (1500)'}, above the "
                             f"{enforced[dev]} this host enforces; libvirt cannot change it on "
                             f"restore: deploy the VM again", f"{FIELD}: interface {dev}")
        kept[dev] = int(size)
    return kept


def _resume(conn: Connection, dom: Any, name: str) -> str:
    state = conn.run("check state", name, lambda _c: dom.state()[0])
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        conn.run("wake up", name, lambda _c: dom.pMWakeup(0))
    elif state != libvirt.VIR_DOMAIN_RUNNING:
        raise VmmError(f"a domain of this name exists and is not running (libvirt state "
                       f"{state}); nothing restored", name)
    return conn.run("read UUID", name, lambda _c: dom.UUIDString()) + "\n"


def restore(args: Sequence[str], stdin: TextIO) -> str:
    from onemetal.vmm import domain_xml  # lxml: restore's, not save's

    cfg = config.load()
    path, vmid = _checkpoint(args, cfg)
    deploy_id(args, 2)
    name = f"one-{vmid}"
    conn = connection(cfg)
    try:
        dom = conn.lookup(name)
        if dom is not None:
            return _resume(conn, dom, name)
        if not os.path.isfile(path):
            raise InputError("missing: there is no checkpoint to restore", path)
        saved = conn.run("read checkpoint", name, lambda c: c.saveImageGetXMLDesc(
            path, libvirt.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE))  # SECURE: keeps the VNC password
        saved = relocate(saved, cfg.storage.datastores_dir, path, vmid)
        mtus = guest_mtus(saved, port_mtus(os.path.join(os.path.dirname(path), "vm.xml"), saved,
                                           cfg))
        _, xml = domain_xml.rewrite(saved, mtus, cfg.vmm.graphics_listen,
                                    cfg.vmm.graphics_policy, vmid)
        gate(path, cfg.storage)
        conn.run("restore", name, lambda c: c.restoreFlags(path, xml, 0))
        uuid = conn.run("read UUID", name, lambda c: c.lookupByName(name).UUIDString())
        os.unlink(path)  # as stock: a restored VM's checkpoint is spent
        return uuid + "\n"
    finally:
        conn.close()
