"""attach_nic and detach_nic, as OpenNebula's kvm driver (src/vmm_mad/remotes/kvm/).

attach_nic <deploy id> <mac> <bridge> <model> <vn_mad> <target> <vmid> <host>, the action
XML on stdin: the <interface> is built from the NIC with ATTACH=YES as KvmVM#interface_xml
builds it (an Open vSwitch virtualport for BRIDGE_TYPE openvswitch), with the MTU the
network driver enforces for that port (onemetal.net.vnm.port_specs, as deploy), so the
guest, the tap and the OVS port agree.
detach_nic <deploy id> <mac> <vmid> <host>: the interface with that MAC goes; one the
domain does not have is success, as in the stock driver.

The NIC's TARGET, MODEL and BRIDGE are the tenant's; a SCRIPT (an executable libvirt
would run as root) is refused.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Sequence, TextIO

    from onemetal.vmm.hotplug import Live


from onemetal.errors import InputError
from onemetal.net.targets import Claim, check_names
from onemetal.opennebula import values
from onemetal.opennebula.vm import VM, Nic
from onemetal.vmm.deploy import vm_port_mtus
from onemetal.vmm.hotplug import Domain, action_data, device_text, vm_of, xml_text
from onemetal.vmm.lifecycle import deploy_id

MODEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
BANDWIDTH = (("average", "AVG_BW"), ("peak", "PEAK_BW"), ("burst", "PEAK_KB"))


def _nic(vm: VM, mac: str) -> Nic:
    """The attached NIC, parsed (and each value checked) as the network driver reads it."""
    found = [n for n in vm.nics if n.attach and not n.alias]
    if len(found) != 1 or found[0].mac != mac:
        raise InputError(f"no NIC with ATTACH=YES and MAC {mac}", "VM/TEMPLATE/NIC")
    return found[0]


def interface_xml(vm: VM, nic: Nic, mtus: dict[str, int]) -> str:
    field = f"NIC[NIC_ID={nic.nic_id}]"
    attrs = nic.attributes
    if attrs.get("SCRIPT"):
        raise InputError("libvirt would run it as root; not supported by onemetal",
                         f"{field}/SCRIPT")
    target = nic.target or f"one-{vm.id}-{nic.nic_id}"
    check_names({target: Claim(vm_id=vm.id, nic_id=nic.nic_id, mac=nic.mac)},
                nic.bridge or "")
    model = attrs.get("MODEL", "")
    if model and not MODEL.fullmatch(model):
        raise InputError(f"{model!r} is not a NIC model name", f"{field}/MODEL")
    if nic.bridge:
        elem = ET.Element("interface", type="bridge")
        if attrs.get("BRIDGE_TYPE") == "openvswitch":
            ET.SubElement(elem, "virtualport", type="openvswitch")
        ET.SubElement(elem, "source", bridge=nic.bridge)
    else:
        elem = ET.Element("interface", type="ethernet")
    ET.SubElement(elem, "mac", address=nic.mac)
    ET.SubElement(elem, "target", dev=target)
    if attrs.get("ORDER"):
        order = values.integer(attrs["ORDER"], f"{field}/ORDER", 1, 999)
        ET.SubElement(elem, "boot", order=str(order))
    if model:
        ET.SubElement(elem, "model", type=model)
    # "auto" (one queue per VCPU in the stock driver) is left to libvirt's default of one
    if model == "virtio" and attrs.get("VIRTIO_QUEUES", "auto") != "auto":
        queues = values.integer(attrs["VIRTIO_QUEUES"], f"{field}/VIRTIO_QUEUES", 1, 256)
        ET.SubElement(elem, "driver", name="vhost", queues=str(queues))
    if target in mtus:
        ET.SubElement(elem, "mtu", size=str(mtus[target]))
    _bandwidth(elem, attrs, field)
    return xml_text(elem)


def _bandwidth(elem: ET.Element, attrs: Mapping[str, str], field: str) -> None:
    """<bandwidth> from the NIC's QoS (kB/s, kB), as KvmVM#interface_xml: the limits oned's
    vnet gives the NIC hold for a hot-plugged one too."""
    found = {direction: {name: str(values.integer(attrs[f"{prefix}_{key}"],
                                                  f"{field}/{prefix}_{key}", 1, 2**32 - 1))
                         for name, key in BANDWIDTH if attrs.get(f"{prefix}_{key}")}
             for direction, prefix in (("inbound", "INBOUND"), ("outbound", "OUTBOUND"))}
    if any(found.values()):
        bandwidth = ET.SubElement(elem, "bandwidth")
        for direction, limits in found.items():
            if limits:
                ET.SubElement(bandwidth, direction, limits)


def _with_mac(live: Live, mac: str) -> Live | None:
    for iface in live.iterfind("devices/interface"):
        found = iface.find("mac")
        if found is not None and (found.get("address") or "").lower() == mac:
            return iface
    return None


def attach_nic(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    mac = values.mac(args[1] if len(args) > 1 else "", "mac").lower()
    vm = VM.from_xml(vm_of(action_data(stdin)))
    nic = _nic(vm, mac)
    with Domain(deploy) as domain:
        xml = interface_xml(vm, nic, vm_port_mtus(domain.cfg, vm))
        if _with_mac(domain.live(), mac) is not None:
            raise InputError(f"{domain.name} already has an interface with MAC {mac}", "mac")
        domain.attach(xml)


def detach_nic(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    mac = values.mac(args[1] if len(args) > 1 else "", "mac").lower()
    with Domain(deploy) as domain:
        iface = _with_mac(domain.live(), mac)
        if iface is not None:
            domain.detach(device_text(iface), lambda live: _with_mac(live, mac) is None)
