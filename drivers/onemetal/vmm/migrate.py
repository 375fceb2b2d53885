"""migrate and migrate_local, as OpenNebula's kvm driver (src/vmm_mad/remotes/kvm/migrate*).

migrate <deploy id> <dest host> <src host> <vmid> <src host>, the action XML on
stdin, runs on the source host; migrate_local (the same arguments) runs on the
frontend when the VM_MAD lists `-l migrate=migrate_local`, and reaches the
source over qemu+ssh as well. A live migration managed by this client, as
`virsh migrate --live` is: the destination connection is oneadmin's own
qemu+ssh (its key and known_hosts), and qemu sends the guest's memory straight
to the destination qemu at tcp://<dest host>, the name oned reaches it by. The
destination gets the domain's XML re-checked as deploy checks it (MTUs of the
VM's ports from the action's VM, consoles on vmm.graphics_listen). Storage is
not copied: a VM with disks needs a shared system datastore. Its libvirt
snapshots move with it (onemetal.vmm.migrate_snapshots).
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence, TextIO

import libvirt

from onemetal import config
from onemetal.errors import InputError
from onemetal.vmm import domain_xml
from onemetal.vmm import migrate_snapshots as snapshots
from onemetal.vmm.connection import Connection, VmmError, VmmTimeout, call
from onemetal.vmm.deploy import destroy_domain, find_domain, vm_port_mtus
from onemetal.vmm.deploy_ids import checked
from onemetal.vmm.snapshots import vm_dir

# A host name or IPv4 address as oned names hosts; never starting with "-" (an ssh option).
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
USAGE = "<deploy id> <dest host> <src host> <vmid> <src host>"
# What `virsh migrate --live` asks for: the destination's domain stays transient, as deploy's.
FLAGS = libvirt.VIR_MIGRATE_LIVE


def peer_uri(host: str) -> str:
    """OpenNebula's $QEMU_PROTOCOL://<host>/system, the user being oneadmin, who runs this."""
    return f"qemu+ssh://{host}/system"


def _host(raw: str, field: str) -> str:
    if not HOST.fullmatch(raw):
        raise InputError(f"{raw!r} is not a host name", field)
    return raw


def parse_args(args: Sequence[str]) -> tuple[str, str, str]:
    """(deploy id, destination host, source host), each checked."""
    if len(args) < 3:
        raise InputError(f"missing: migrate {USAGE}", "argv")
    deploy_id = checked(args[0])
    dest, src = _host(args[1], "dest host"), _host(args[2], "src host")
    if dest == src:
        raise InputError(f"{dest} is the source host; a migration between system datastores "
                         f"of one host is not supported by onemetal", "dest host")
    return deploy_id, dest, src


def action_data(text: str) -> Any:
    """The <VMM_DRIVER_ACTION_DATA> oned sends (plain, or base64 to a local action)."""
    from onemetal.opennebula import payload

    return payload.read_payload(text, "stdin", root="VMM_DRIVER_ACTION_DATA")


def port_mtus(data: Any, cfg: config.Config) -> dict[str, int]:
    """The MTU the network driver enforces for each of the action's VM's ports, by tap."""
    from onemetal.opennebula.vm import VM

    vm = data.find("VM")
    if vm is None:
        raise InputError("missing", "stdin: VMM_DRIVER_ACTION_DATA/VM")
    return vm_port_mtus(cfg, VM.from_xml(vm))


def shared(data: Any) -> bool:
    return (data.findtext("DATASTORE/TEMPLATE/SHARED") or "").strip().upper() == "YES"


def destination_xml(live: str, data: Any, cfg: config.Config) -> tuple[str, str]:
    """(name, XML for the destination): the live XML re-checked as deploy checks a file."""
    name, xml = domain_xml.rewrite(live, port_mtus(data, cfg), cfg.vmm.graphics_listen,
                                   cfg.vmm.graphics_policy)
    disks = [d for d in domain_xml.parse(xml).iterfind("devices/disk")
             if d.find("source") is not None]
    if disks and not shared(data):
        raise InputError("the VM has disks and its system datastore is not SHARED = YES; "
                         "copying disks during a migration is not supported by onemetal",
                         "stdin: DATASTORE/TEMPLATE/SHARED")
    return name, xml


def params(xml: str, dest: str) -> dict[str, str]:
    return {libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml,
            libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{dest}"}


def _if_running(conn: Connection, deploy_id: str) -> Any:
    """The domain when it runs there, else None."""
    dom = find_domain(conn, deploy_id)
    if dom is None or not conn.run("check state", deploy_id, lambda _c: dom.isActive()):
        return None
    return dom


def _live(src: Connection, deploy_id: str) -> tuple[Any, str]:
    dom = _if_running(src, deploy_id)
    if dom is None:
        raise VmmError(f"no running domain on {src.uri}", deploy_id)
    flags = libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_SECURE
    return dom, src.run("read XML", deploy_id, lambda _c: dom.XMLDesc(flags))


def flags(cfg: config.Config) -> int:
    return FLAGS | (libvirt.VIR_MIGRATE_UNSAFE if cfg.vmm.migrate_unsafe else 0)


def _transfer(src: Connection, dom: Any, dconn: Any, name: str, dest: str, xml: str,
              cfg: config.Config) -> None:
    """migrate3 within vmm.migrate_timeout; then the job is aborted (the guest stays)."""
    timeout = cfg.vmm.migrate_timeout
    try:
        call(dom.migrate3, dconn, params(xml, dest), flags(cfg), what=f"migrate to {dest}",
             domain=name, timeout=timeout)
    except VmmTimeout:
        try:
            src.run("abort migration", name, lambda _c: dom.abortJob())
            how = "aborted"
        except VmmError as exc:  # not started yet or already over: the caller's check decides
            how = f"abort failed: {exc}"
        raise VmmError(f"migrate to {dest}: not done within {timeout:g} s "
                       f"(vmm.migrate_timeout); {how}", name) from None


def run(args: Sequence[str], stdin: TextIO, on_source: bool) -> None:
    deploy_id, dest, src_host = parse_args(args)
    cfg = config.load()
    source_uri = cfg.vmm.uri if on_source else peer_uri(src_host)
    data = action_data(stdin.read(domain_xml.MAX_BYTES + 1))
    src = Connection(source_uri, cfg.vmm.call_timeout)
    dst = Connection(peer_uri(dest), cfg.vmm.call_timeout)
    try:
        dom, live = _live(src, deploy_id)
        name, xml = destination_xml(live, data, cfg)
        directory = vm_dir(domain_xml.parse(xml), cfg.storage.datastores_dir)
        texts, current = snapshots.saved(src, dom, name, directory)
        dconn = dst.run("connect", name, lambda c: c)
        snapshots.drop(src, dom, name, texts)
        try:
            _transfer(src, dom, dconn, name, dest, xml, cfg)
        except VmmError:
            if _if_running(src, name) is not None:
                destroy_domain(dst, name)  # the stock driver's clean-up of a half-made destination
                snapshots.redefine(src, name, texts, current)
                raise
            if _if_running(dst, name) is None:
                raise
            # else it ended after the deadline, its abort too late: the guest runs there
        if find_domain(src, name) is not None:
            raise VmmError(f"migrated to {dest}, yet still present on {src.uri}", name)
        snapshots.redefine(dst, name, texts, current)
    finally:
        src.close()
        dst.close()


def migrate(args: Sequence[str], stdin: TextIO) -> None:
    """On the source host: its own libvirt (vmm.uri) to the destination's."""
    run(args, stdin, True)


def migrate_local(args: Sequence[str], stdin: TextIO) -> None:
    """On the frontend: the source's libvirt over qemu+ssh, as the stock migrate_local."""
    run(args, stdin, False)
