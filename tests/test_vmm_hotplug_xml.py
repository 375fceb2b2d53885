"""The device XML of attach_disk and attach_nic, built from what a tenant wrote (no libvirt)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from onemetal.errors import InputError
from onemetal.lab.samples import SampleNic, nic_xml
from onemetal.opennebula import payload
from onemetal.opennebula.vm import VM
from onemetal.vmm.hotplug_disk import disk_xml, target_name
from onemetal.vmm.hotplug_nic import interface_xml


def _disk(**fields: str) -> payload.Element:
    body = "".join(f"<{k}>{v}</{k}>" for k, v in {"DISK_ID": "1", **fields}.items())
    return payload.parse_xml(f"<DISK>{body}</DISK>".encode())


@pytest.mark.parametrize("target, address", [("sda", "0"), ("sdb", "1"), ("sdz", "25"),
                                             ("sdaa", "26"), ("vdb", None)])
def test_a_scsi_target_gets_the_stock_drive_address(target, address) -> None:
    elem = ET.fromstring(disk_xml(_disk(DRIVER="qcow2"), "/ds/0/7/disk.1", target))
    found = elem.find("address")
    assert (found.get("target") if found is not None else None) == address
    assert elem.find("driver").attrib == {"name": "qemu", "type": "qcow2", "cache": "default"}


def test_a_cdrom_is_raw_and_read_only_and_values_are_escaped() -> None:
    text = disk_xml(_disk(TYPE="CDROM", DRIVER="qcow2"), "/ds/0/7/a'b\"<c>.iso", "hdc")
    elem = ET.fromstring(text)
    assert (elem.get("device"), elem.find("driver").get("type")) == ("cdrom", "raw")
    assert elem.find("readonly") is not None
    assert elem.find("source").get("file") == "/ds/0/7/a'b\"<c>.iso"  # one attribute, intact


@pytest.mark.parametrize("fields, field", [
    ({"TYPE": "RBD"}, "DISK[DISK_ID=1]/TYPE"), ({"IO": "x"}, "DISK[DISK_ID=1]/IO"),
    ({"ORDER": "0"}, "DISK[DISK_ID=1]/ORDER"), ({"DRIVER": "vmdk"}, "DISK[DISK_ID=1]/DRIVER"),
])
def test_bad_disk_attributes_name_the_field(fields, field) -> None:
    with pytest.raises(InputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        disk_xml(_disk(**fields), "/ds/0/7/disk.1", "vdb")


@pytest.mark.parametrize("raw", ["vdb/../x", "vda'", "sdaaa", "xvda", ""])
def test_a_target_libvirt_does_not_name_is_refused(raw) -> None:
    with pytest.raises(InputError, match="target"):
        target_name(raw, "target")


def _vm(**extra: str) -> VM:
    nic = SampleNic(1, "10.0.7.2", "02:00:0a:00:07:02", extra=(("ATTACH", "YES"), *extra.items()))
    root = payload.parse_xml(f"<VM><ID>7</ID><TEMPLATE>{nic_xml(nic, vm_id=7)}</TEMPLATE></VM>"
                             .encode())
    return VM.from_xml(root)


def test_the_interface_is_the_stock_ovs_one_with_the_enforced_mtu() -> None:
    vm = _vm(MODEL="virtio")
    elem = ET.fromstring(interface_xml(vm, vm.nics[0], {"one-7-1": 1450}))
    assert elem.get("type") == "bridge" and elem.find("virtualport").get("type") == "openvswitch"
    assert [c.tag for c in elem] == ["virtualport", "source", "mac", "target", "model", "mtu"]
    assert elem.find("mtu").get("size") == "1450" and elem.find("target").get("dev") == "one-7-1"
    assert ET.fromstring(interface_xml(vm, vm.nics[0], {})).find("mtu") is None


def test_the_nic_keeps_its_qos_and_virtio_queues() -> None:
    vm = _vm(MODEL="virtio", VIRTIO_QUEUES="4", INBOUND_AVG_BW="1000", INBOUND_PEAK_KB="64",
             OUTBOUND_PEAK_BW="2000")
    elem = ET.fromstring(interface_xml(vm, vm.nics[0], {}))
    assert elem.find("driver").attrib == {"name": "vhost", "queues": "4"}
    assert elem.find("bandwidth/inbound").attrib == {"average": "1000", "burst": "64"}
    assert elem.find("bandwidth/outbound").attrib == {"peak": "2000"}
    assert ET.fromstring(interface_xml(_vm(), _vm().nics[0], {})).find("bandwidth") is None


@pytest.mark.parametrize("extra, field", [
    ({"INBOUND_AVG_BW": "1e9"}, "NIC[NIC_ID=1]/INBOUND_AVG_BW"),
    ({"MODEL": "virtio", "VIRTIO_QUEUES": "0"}, "NIC[NIC_ID=1]/VIRTIO_QUEUES"),
    ({"MODEL": "virtio'/><script path='/x"}, "NIC[NIC_ID=1]/MODEL"),
    ({"SCRIPT": "/usr/bin/id"}, "NIC[NIC_ID=1]/SCRIPT"),
    ({"TARGET": "vx1"}, "NIC[NIC_ID=1]/TARGET"),
    ({"TARGET": "one-7-0"}, "NIC[NIC_ID=1]/TARGET"),
])
def test_a_hostile_nic_is_refused_naming_the_field(extra, field) -> None:
    vm = _vm(**extra)
    with pytest.raises(InputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        interface_xml(vm, vm.nics[0], {})
