"""A VM described once (OneVm) and the documents oned writes for it; lab.one_docs gathers them all.

Each function is pure and follows the oned source that writes the document:
the VM (VirtualMachine::to_xml_extended, History::to_xml, Template::to_xml: attributes
by name, vector keys sorted, values in CDATA), the network drivers' payload
(lab.samples.vnm_vm_xml), VMM_DRIVER_ACTION_DATA (VirtualMachineManager::format_message),
and context.sh (VirtualMachine::generate_context). oned leaves some values raw where its
own name checks keep markup out; here every value is escaped, so a hostile one still
gives a well-formed document that reads back as written. The deployment file and the
transfer files are in one_deployment.py, the datastore and image documents in one_datastore.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping, Sequence, Union
from xml.sax.saxutils import escape

from onemetal.lab.samples import SampleNic, nic_fields, nic_xml, vnm_vm_xml
from onemetal.storage import context

DATASTORES = "/var/lib/one//datastores"  # oned's DATASTORE_LOCATION, with its double slash
STIME = 1796165000  # a fixed creation time: documents are reproducible
VM_MAD = TM_MAD = "onemetal"
Value = Union[str, Mapping[str, str]]


@dataclass(frozen=True)
class OneDisk:
    disk_id: int
    source: str  # the image file on the image datastore
    image_ds_id: int
    format: str = "qcow2"  # qcow2 | raw
    target: str = "vda"
    clone: bool = True
    image_id: int = 0
    image: str = "image"
    datastore: str = "images"


@dataclass(frozen=True)
class OneNet:
    """The vnet a NIC leases from: what oned looks up for the NIC's context (ar_lookup)."""
    vnet_id: int
    name: str
    address: str
    prefixlen: int
    gateway: str = ""
    dns: str = ""
    mtu: int | None = None  # GUEST_MTU
    vni: int | None = None
    bridge: str = "br-mesh"


@dataclass(frozen=True)
class OneVm:
    vm_id: int
    name: str
    host: str
    nics: tuple[SampleNic, ...]
    disks: tuple[OneDisk, ...] = ()
    context: bool = True
    system_ds_id: int = 0
    uid: int = 2
    gid: int = 100
    uname: str = "tenant"
    gname: str = "eip-users"
    user_template: tuple[tuple[str, str], ...] = (("EIP", "yes"),)
    memory_mb: int = 64
    vcpu: int = 1
    hid: int = 0
    nets: tuple[OneNet, ...] = ()  # by NETWORK_ID; a NIC's is 0 unless its `extra` says otherwise
    ssh_key: str = "ssh-ed25519 AAAAC3Nza lab"
    extra_context: tuple[tuple[str, str], ...] = ()  # more CONTEXT attributes, as written
    deploy_id: str = ""
    previous: tuple[str, int] | None = None  # (HOSTNAME, HID) before a migration to `host`
    boot: tuple[str, ...] = ()  # OS/BOOT, e.g. ("disk0", "nic0"): the devices' boot order

    def boot_order(self, device: str) -> int | None:
        """The ORDER oned's parse_boot gives a device ("disk<id>", "nic<id>") from OS/BOOT."""
        return self.boot.index(device) + 1 if device in self.boot else None

    @property
    def system_dir(self) -> str:
        """History's vm_rhome: <DATASTORE_LOCATION>/<system ds>/<vmid>."""
        return f"{DATASTORES}/{self.system_ds_id}/{self.vm_id}"

    @property
    def context_disk_id(self) -> int:
        """oned gives the context the disk id after the last DISK's."""
        return max((d.disk_id for d in self.disks), default=-1) + 1


def cdata(value: object) -> str:
    """oned's escape_xml (CDATA); a "]]>" inside is split over two sections, as XML allows."""
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def leaf(tag: str, value: object) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


def template(tag: str, attrs: Sequence[tuple[str, Value]],
             written: Sequence[tuple[str, str]] = ()) -> str:
    """Template::to_xml: attributes by name (repeats as given), vector keys sorted, CDATA;
    `written`: (name, element) pairs already in XML, placed by name among the others."""
    out = list(written)
    for name, value in attrs:
        if isinstance(value, Mapping):
            inner = "".join(f"<{k}>{cdata(value[k])}</{k}>" for k in sorted(value))
        else:
            inner = cdata(value)
        out.append((name, f"<{name}>{inner}</{name}>"))
    return f"<{tag}>{''.join(xml for _, xml in sorted(out, key=lambda a: a[0]))}</{tag}>"


# VirtualMachineContext.cc NETWORK_CONTEXT and NETWORK6_CONTEXT: (ETH<id>_ suffix, NIC
# attribute, its alternative, whether the vnet is asked when the NIC has none).
NETWORK_CONTEXT = (
    ("IP", "IP", "", False), ("MAC", "MAC", "", False), ("MASK", "NETWORK_MASK", "", True),
    ("NETWORK", "NETWORK_ADDRESS", "", True), ("GATEWAY", "GATEWAY", "", True),
    ("DNS", "DNS", "", True), ("SEARCH_DOMAIN", "SEARCH_DOMAIN", "", True),
    ("MTU", "GUEST_MTU", "", True), ("METRIC", "METRIC", "", True),
    ("METHOD", "METHOD", "", True), ("VLAN_ID", "VLAN_ID", "", True),
    ("VROUTER_IP", "VROUTER_IP", "", False), ("VROUTER_MANAGEMENT", "VROUTER_MANAGEMENT", "", False),
    ("EXTERNAL", "EXTERNAL", "", False), ("ROUTES", "ROUTES", "", True),
    ("IP6", "IP6_GLOBAL", "IP6", False), ("IP6_ULA", "IP6_ULA", "", False),
    ("IP6_GATEWAY", "GATEWAY6", "", True), ("IP6_METRIC", "IP6_METRIC", "", True),
    ("IP6_METHOD", "IP6_METHOD", "", True), ("IP6_PREFIX_LENGTH", "PREFIX_LENGTH", "", True),
    ("VROUTER_IP6", "VROUTER_IP6_GLOBAL", "VROUTER_IP6", False))


def vnet_attributes(net: OneNet) -> dict[str, str]:
    """What the vnet and its address range answer for $NETWORK[...] (the ar_lookup keys)."""
    network = ipaddress.ip_network(f"{net.address}/{net.prefixlen}", strict=False)
    found = {"NETWORK_MASK": str(network.netmask), "NETWORK_ADDRESS": str(network.network_address),
             "GATEWAY": net.gateway, "DNS": net.dns, "GUEST_MTU": str(net.mtu or ""),
             "VLAN_ID": str(net.vni or "")}
    return {k: v for k, v in found.items() if v}


def nic_context(vm: OneVm, nic: SampleNic) -> dict[str, str]:
    """parse_context_network for one NIC: every ETH<id>_ key, the NIC's value first, else the
    vnet's where oned looks it up, else empty (oned writes the empty ones too)."""
    own = nic_fields(nic, vm.vm_id)
    net_id = int(own.get("NETWORK_ID", "0"))
    net = next((n for n in vm.nets if n.vnet_id == net_id), None)
    vnet = vnet_attributes(net) if net is not None else {}
    out = {}
    for suffix, key, alt, lookup in NETWORK_CONTEXT:
        value = own.get(key) or (own.get(alt, "") if alt else "")
        out[f"ETH{nic.nic_id}_{suffix}"] = value or (vnet.get(key, "") if lookup else "")
    return out


def context_values(vm: OneVm) -> dict[str, str]:
    """The CONTEXT section after generate_context: each NIC's ETH<id>_* (nic_context), the
    context disk's DISK_ID and TARGET, then `extra_context` as written."""
    values = {"DISK_ID": str(vm.context_disk_id), "NETWORK": "YES",
              "SSH_PUBLIC_KEY": vm.ssh_key, "TARGET": "hda"}
    for nic in vm.nics:
        values.update(nic_context(vm, nic))
    return {**values, **dict(vm.extra_context)}


def _disk(vm: OneVm, disk: OneDisk) -> dict[str, str]:
    order = vm.boot_order(f"disk{disk.disk_id}")
    return {**({"ORDER": str(order)} if order else {}), "ALLOW_ORPHANS": "NO", "CLONE": "YES" if disk.clone else "NO",
            "CLONE_TARGET": "SYSTEM", "CLUSTER_ID": "0", "DATASTORE": disk.datastore,
            "DATASTORE_ID": str(disk.image_ds_id), "DEV_PREFIX": disk.target[:2],
            "DISK_ID": str(disk.disk_id), "DISK_TYPE": "FILE", "DRIVER": disk.format,
            "FORMAT": disk.format, "IMAGE": disk.image, "IMAGE_ID": str(disk.image_id),
            "IMAGE_STATE": "2", "LN_TARGET": "NONE", "READONLY": "NO", "SAVE": "NO",
            "SOURCE": disk.source, "TARGET": disk.target, "TM_MAD": TM_MAD, "TYPE": "FILE"}


LIVE_MIGRATE_ACTION = 2  # VMActions.h: what closed the previous record (the demo migrates live)


def history(vm: OneVm, seq: int, host: str, hid: int, action: int = 0) -> str:
    """History::to_xml of one placement (`action`: what ended it, 0 while it is current)."""
    fields = [("OID", vm.vm_id), ("SEQ", seq), ("HOSTNAME", escape(host)), ("HID", hid),
              ("CID", 0), ("STIME", STIME + 10 + seq), ("ETIME", 0), ("VM_MAD", cdata(VM_MAD)),
              ("TM_MAD", cdata(TM_MAD)), ("DS_ID", vm.system_ds_id), ("PLAN_ID", -1),
              ("ACTION_ID", -1), ("PSTIME", STIME + 10), ("PETIME", STIME + 11),
              ("RSTIME", STIME + 11), ("RETIME", 0), ("ESTIME", 0), ("EETIME", 0),
              ("ACTION", action), ("UID", vm.uid), ("GID", vm.gid), ("REQUEST_ID", -1)]
    return "<HISTORY>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields) + "</HISTORY>"


def _template_attrs(vm: OneVm) -> list[tuple[str, Value]]:
    attrs: list[tuple[str, Value]] = [
        ("CPU", str(vm.vcpu)), ("MEMORY", str(vm.memory_mb)), ("VCPU", str(vm.vcpu)),
        ("GRAPHICS", {"LISTEN": "0.0.0.0", "PORT": str(5900 + vm.vm_id), "TYPE": "VNC"}),
        ("OS", {"ARCH": "x86_64", **({"BOOT": ",".join(vm.boot)} if vm.boot else {})}),
        ("TEMPLATE_ID", "0"), ("VMID", str(vm.vm_id))]
    attrs += [("DISK", _disk(vm, d)) for d in vm.disks]
    if vm.context:
        attrs.append(("CONTEXT", context_values(vm)))
    return attrs


def history_records(vm: OneVm, n_history: int = 1) -> str:
    """The current placement (n_history 1: VirtualMachine::to_xml, what drivers get), after
    the previous one if any (2: to_xml_extended, one.vm.info)."""
    seq = 1 if vm.previous else 0
    records = [history(vm, seq, vm.host, vm.hid)]
    if vm.previous and n_history == 2:
        records.insert(0, history(vm, 0, *vm.previous, action=LIVE_MIGRATE_ACTION))
    return f"<HISTORY_RECORDS>{''.join(records)}</HISTORY_RECORDS>"


def vm_xml(vm: OneVm, *, n_history: int = 1) -> str:
    """The VM (RUNNING) as oned writes it for drivers (vm.xml on the host, action data) or,
    with n_history=2, as one.vm.info returns it."""
    perms = "".join(f"<{who}_{what}>{int(who == 'OWNER' and what in 'UM')}</{who}_{what}>"
                    for who in ("OWNER", "GROUP", "OTHER") for what in "UMA")
    head = "".join(leaf(k, v) for k, v in (
        ("ID", vm.vm_id), ("UID", vm.uid), ("GID", vm.gid), ("UNAME", vm.uname),
        ("GNAME", vm.gname), ("NAME", vm.name)))
    state = "".join(leaf(k, v) for k, v in (
        ("LAST_POLL", 0), ("STATE", 3), ("LCM_STATE", 3), ("PREV_STATE", 3),
        ("PREV_LCM_STATE", 3), ("RESCHED", 0), ("STIME", STIME), ("ETIME", 0),
        ("DEPLOY_ID", vm.deploy_id)))
    # nic_xml: the NIC exactly as the network drivers' payload carries it
    body = template("TEMPLATE", _template_attrs(vm),
                    [("NIC", nic_xml(n, vm_id=vm.vm_id)) for n in vm.nics])
    return (f"<VM>{head}<PERMISSIONS>{perms}</PERMISSIONS>{state}<MONITORING/>{body}"
            f"{template('USER_TEMPLATE', list(vm.user_template))}"
            f"{history_records(vm, n_history)}</VM>")


def vnm_payload(vm: OneVm) -> str:
    """The network drivers' payload for this VM (the repeated TEMPLATE/HISTORY_RECORDS)."""
    return vnm_vm_xml(vm.vm_id, vm.host, vm.nics,
                      context=context_values(vm) if vm.context else {},
                      user_template=vm.user_template, hid=vm.hid, ds_id=vm.system_ds_id,
                      deploy_id=vm.deploy_id, vm_mad=VM_MAD)


def context_sh(vm: OneVm) -> str:
    """generate_context's file: the header, then KEY='value' by key, `'` written `'\\''`
    (the same writer as the drivers' own context.sh: storage.context.render)."""
    return context.render(context_values(vm))
