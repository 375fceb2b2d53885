"""Typed, read-only views of hosts, datastores, images and the action documents that carry them."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

from onemetal.errors import InputError
from onemetal.opennebula import values
from onemetal.opennebula.vm import VM
from onemetal.opennebula.xmlview import attrs, child, conv, expect_root, opt, req
from onemetal.record import value

if TYPE_CHECKING:
    from lxml import etree

# Host STATE values (include/Host.h); a disabled or offline host leaves the mesh.
HOST_STATES = {0: "INIT", 1: "MONITORING_MONITORED", 2: "MONITORED", 3: "ERROR", 4: "DISABLED",
               5: "MONITORING_ERROR", 6: "MONITORING_INIT", 7: "MONITORING_DISABLED", 8: "OFFLINE"}
DATASTORE_TYPES = {0: "IMAGE", 1: "SYSTEM", 2: "FILE", 3: "BACKUP"}


@value
class Host:
    id: int
    name: str
    state: int | None
    cluster_id: int | None
    im_mad: str | None
    vm_mad: str | None
    template: Mapping[str, str]

    @classmethod
    def from_xml(cls, elem: "etree._Element", field: str = "HOST") -> "Host":
        host_id = values.integer(req(elem, "ID", field), f"{field}/ID")
        field = f"HOST[ID={host_id}]"
        return cls(
            id=host_id,
            name=values.name(req(elem, "NAME", field), f"{field}/NAME"),
            state=conv(elem, "STATE", field, values.integer),
            cluster_id=conv(elem, "CLUSTER_ID", field, lambda v, f: values.integer(v, f, -1)),
            im_mad=conv(elem, "IM_MAD", field, values.name),
            vm_mad=conv(elem, "VM_MAD", field, values.name),
            template=attrs(elem.find("TEMPLATE")))

    @property
    def state_name(self) -> str:
        return HOST_STATES.get(self.state, "UNKNOWN") if self.state is not None else "UNKNOWN"


def host_pool(root: "etree._Element") -> tuple[Host, ...]:
    expect_root(root, "HOST_POOL")
    hosts = tuple(Host.from_xml(e, f"HOST[{i}]") for i, e in enumerate(root.findall("HOST")))
    seen: set[int] = set()
    for host in hosts:
        if host.id in seen:
            raise InputError(f"host id {host.id} appears twice", "HOST_POOL")
        seen.add(host.id)
    return hosts


@value
class VmSummary:
    """What the NAT needs of a VM from one.vm.info or one.vmpool.info: owner and NICs."""
    id: int
    uid: int
    gid: int
    state: int
    nics: tuple[tuple[int, str | None, int | None], ...]  # (NIC_ID, IP, NETWORK_ID)

    DONE = 6  # VM_STATE DONE (include/VirtualMachine.h)


@value
class Datastore:
    id: int
    name: str
    type: str
    ds_mad: str | None
    tm_mad: str | None
    base_path: str | None
    template: Mapping[str, str]

    @classmethod
    def from_xml(cls, elem: "etree._Element") -> "Datastore":
        ds_id = values.integer(req(elem, "ID", "DATASTORE"), "DATASTORE/ID")
        field = f"DATASTORE[ID={ds_id}]"
        ds_type = conv(elem, "TYPE", field, values.integer)
        base = opt(elem, "BASE_PATH")
        if base is not None and (not base.startswith("/") or "/../" in base + "/"):
            raise InputError(f"{base!r} is not an absolute path without '..'", f"{field}/BASE_PATH")
        template = attrs(elem.find("TEMPLATE"))
        return cls(
            id=ds_id, name=values.text(req(elem, "NAME", field), f"{field}/NAME"),
            type=DATASTORE_TYPES.get(ds_type if ds_type is not None else 0, "IMAGE"),
            ds_mad=_mad(elem, template, "DS_MAD", field),
            tm_mad=_mad(elem, template, "TM_MAD", field),
            base_path=values.text(base, f"{field}/BASE_PATH") if base else None,
            template=template)


def _mad(elem: "etree._Element", template: Mapping[str, str], key: str, field: str) -> str | None:
    """A driver name of the datastore, or None; oned writes "-" as the DS_MAD of every system
    datastore (Datastore::parse_template), which names no driver."""
    for where, text in ((key, opt(elem, key)), (f"TEMPLATE/{key}", template.get(key))):
        if text and text != "-":
            return values.name(text, f"{field}/{where}")
    return None


@value
class Image:
    id: int
    name: str
    source: str | None
    path: str | None
    format: str | None
    size_mb: int | None
    persistent: bool
    template: Mapping[str, str]

    @classmethod
    def from_xml(cls, elem: "etree._Element") -> "Image":
        image_id = values.integer(req(elem, "ID", "IMAGE"), "IMAGE/ID")
        field = f"IMAGE[ID={image_id}]"
        return cls(
            id=image_id, name=values.text(req(elem, "NAME", field), f"{field}/NAME"),
            source=conv(elem, "SOURCE", field, values.text),
            path=conv(elem, "PATH", field, values.text),
            format=conv(elem, "FORMAT", field, values.name),
            size_mb=conv(elem, "SIZE", field, values.integer),
            persistent=(opt(elem, "PERSISTENT") or "0") == "1",
            template=attrs(elem.find("TEMPLATE")))


@value
class VmmAction:
    """<VMM_DRIVER_ACTION_DATA>: what a virtualization script reads on stdin."""

    host: str | None
    migr_host: str | None
    deploy_id: str | None
    vm: VM
    datastore: Datastore | None

    @classmethod
    def from_xml(cls, root: "etree._Element") -> "VmmAction":
        tag = "VMM_DRIVER_ACTION_DATA"
        expect_root(root, tag)
        vm = child(root, "VM", tag)
        ds = root.find("DATASTORE")
        return cls(host=conv(root, "HOST", tag, values.name),
                   migr_host=conv(root, "MIGR_HOST", tag, values.name),
                   deploy_id=conv(root, "DEPLOY_ID", tag, values.name),
                   vm=VM.from_xml(vm),
                   datastore=Datastore.from_xml(ds) if ds is not None else None)


@value
class DsAction:
    """<DS_DRIVER_ACTION_DATA>: what a datastore script receives (stdin since 6.8, argv before)."""

    image: Image | None
    datastore: Datastore

    @classmethod
    def from_xml(cls, root: "etree._Element") -> "DsAction":
        tag = "DS_DRIVER_ACTION_DATA"
        expect_root(root, tag)
        ds = child(root, "DATASTORE", tag)
        image = root.find("IMAGE")
        return cls(image=Image.from_xml(image) if image is not None else None,
                   datastore=Datastore.from_xml(ds))
