"""deploy and cancel, as OpenNebula's kvm driver (src/vmm_mad/remotes/kvm/deploy, cancel).

deploy <deployment file> <host> <vmid> <host>, the domain XML on stdin: writes
it to the file (through the datastore write-gate), creates the transient domain
and prints its UUID, the deploy id that OpenNebula's KVM monitoring also reports
(src/im_mad/remotes/lib/kvm.rb). The file is checked and rewritten first
(onemetal.vmm.domain_xml); the MTUs come from the VM's NICs in vm.xml, which oned
writes next to the deployment file just before. A domain of that name already
running is reported, not created again; a failure after creation destroys it.

cancel <deploy id> <host> <vmid>: destroys the domain; one already gone is success.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence, TextIO

from onemetal import config
from onemetal.errors import InputError
from onemetal.storage.datastores import gate, inside
from onemetal.vmm.connection import Connection, VmmError, no_domain
from onemetal.vmm.deploy_ids import UUID, checked


def connection(cfg: config.Config) -> Connection:
    return Connection(cfg.vmm.uri, cfg.vmm.call_timeout)


def vm_port_mtus(cfg: config.Config, vm: Any) -> dict[str, int]:
    """The MTU the network driver enforces for each of the VM's ports, by tap name
    (onemetal.net.vnm.port_specs)."""
    from onemetal.net.host import NetHost
    from onemetal.net.vnm import port_specs

    return {tap: spec.mtu for tap, spec in port_specs(NetHost(cfg), vm).items()}


def port_mtus(vm_xml: str, text: str, cfg: config.Config) -> dict[str, int]:
    """The enforced MTU of each of the VM's ports in vm_xml by tap name (vm_port_mtus)."""
    from onemetal.opennebula import payload
    from onemetal.opennebula.vm import VM

    try:
        with open(vm_xml, encoding="utf-8") as f:
            raw = f.read()
    except FileNotFoundError:
        if f"bridge='{cfg.net.bridge}'" in text or f'bridge="{cfg.net.bridge}"' in text:
            raise InputError("missing; oned writes it before deploy and the NICs' MTUs come "
                             "from it", vm_xml) from None
        return {}
    return vm_port_mtus(cfg, VM.from_xml(payload.read_payload(raw, vm_xml, root="VM")))


def _write(path: str, text: str) -> None:
    """The file as libvirt got it, replaced whole (a reader never sees half of it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)


def _running(conn: Connection, name: str) -> str | None:
    """The UUID of a running domain of that name; VmmError for one defined but not running."""
    dom = conn.lookup(name)
    if dom is None:
        return None
    if not conn.run("check state", name, lambda _c: dom.isActive()):
        raise VmmError("a domain of this name is defined but not running; undefine it or "
                       "start it by hand", name)
    return conn.run("read UUID", name, lambda _c: dom.UUIDString())


def _create(conn: Connection, name: str, xml: str) -> str:
    created: list[Any] = []

    def create(c: Any) -> str:
        created.append(c.createXML(xml, 0))
        return created[0].UUIDString()

    try:
        return conn.run("create", name, create)
    except VmmError:
        if created:  # half way: created, yet the action fails; leave nothing behind
            destroy_domain(conn, name)
        elif (running := _running(conn, name)) is not None:
            return running  # a concurrent deploy of the same VM won the race
        raise


def deploy(args: Sequence[str], stdin: TextIO) -> str:
    if not args:
        raise InputError("missing: deploy <deployment file> <host> <vmid> <host>", "argv")
    from onemetal.vmm import domain_xml  # lxml: for deploy's rewrite, not for cancel

    cfg = config.load()
    path = inside(args[0], cfg.storage.datastores_dir, "deployment file")
    vmid = args[2] if len(args) > 2 and args[2].isdigit() else None
    text = stdin.read(domain_xml.MAX_BYTES + 1)
    mtus = port_mtus(os.path.join(os.path.dirname(path), "vm.xml"), text, cfg)
    name, xml = domain_xml.rewrite(text, mtus, cfg.vmm.graphics_listen, cfg.vmm.graphics_policy,
                                   vmid, (cfg.storage.datastores_dir, os.path.dirname(path)))
    conn = connection(cfg)
    try:
        running = _running(conn, name)
        if running is not None:
            return running + "\n"
        gate(path, cfg.storage)
        _write(path, xml)
        return _create(conn, name, xml) + "\n"
    finally:
        conn.close()


def find_domain(conn: Connection, deploy_id: str) -> Any:
    """The domain by UUID (what deploy printed) or name; None when libvirt has none."""
    if not UUID.fullmatch(deploy_id):
        return conn.lookup(deploy_id)

    def by_uuid(c: Any) -> Any:
        try:
            return c.lookupByUUIDString(deploy_id)
        except Exception as exc:
            if no_domain(exc):
                return None
            raise
    return conn.run("look up", deploy_id, by_uuid)


def destroy_domain(conn: Connection, deploy_id: str) -> bool:
    """Destroy the domain; False when there was none."""
    dom = find_domain(conn, deploy_id)
    if dom is None:
        return False

    def destroy(_c: Any) -> None:
        try:
            dom.destroy()
        except Exception as exc:  # gone between the look-up and now: what cancel wants
            if not no_domain(exc):
                raise
    conn.run("destroy", deploy_id, destroy)
    return True


def cancel(args: Sequence[str], stdin: TextIO) -> None:
    deploy_id = checked(args[0] if args else "")
    conn = connection(config.load())
    try:
        destroy_domain(conn, deploy_id)
        if find_domain(conn, deploy_id) is not None:
            raise VmmError("still present after destroy", deploy_id)
    finally:
        conn.close()
