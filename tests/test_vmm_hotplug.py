"""attach/detach of NICs and disks, resize and resize_disk of remotes/vmm/onemetal over SSH as
oneadmin, on a lab host's own libvirtd with a running TCG guest (tests/vmm_guest.py)."""

from __future__ import annotations

import json
from typing import Iterator
from xml.sax.saxutils import escape

import pytest
from lxml import etree
from vmm_guest import VM_DIR, action_data, failed, guest, live, run, vm_xml

from onemetal.lab import Lab, libvirt
from onemetal.lab.samples import SampleNic

NIC1 = SampleNic(1, "10.0.7.2", "02:00:0a:00:07:02", mtu=None,
                 extra=(("ATTACH", "YES"), ("MODEL", "virtio")))
NIC1_ARGS = ["02:00:0a:00:07:02", "br-mesh", "virtio", "ovswitch_vxlan_unicast", "one-7-1",
             "7", "one-0"]


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Lab, libvirt.Libvirt]]:
    with guest() as pair:
        lab = pair[0]
        lab.ssh("one-0").run(["qemu-img", "create", "-q", "-f", "qcow2", f"{VM_DIR}/disk.1", "8M"])
        lab.ssh("one-0").run(["ln", "-sfn", "/etc/passwd", f"{VM_DIR}/disk.2"])
        yield pair


def _disk(disk_id: int, target: str, **extra: str) -> str:
    fields = {"DISK_ID": str(disk_id), "TARGET": target, "DRIVER": "qcow2", "TYPE": "FILE",
              "ATTACH": "YES", **extra}
    return "<DISK>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()) + "</DISK>"


def _targets(daemons: libvirt.Libvirt, kind: str) -> list[str]:
    return [t.get("dev") for t in live(daemons).iterfind(f"devices/{kind}/target")]


def _ports(lab: Lab) -> list[str]:
    return lab.host("one-0").vsctl("list-ports", "br-mesh").split()


def _nic_xml(nic: SampleNic) -> str:
    return action_data(vm_xml(nics=[nic]))


def test_attach_nic_applies_the_enforced_mtu_and_detach_removes_the_port(node) -> None:
    lab, daemons = node
    result = run(lab, "attach_nic", "one-7", *NIC1_ARGS, input=_nic_xml(NIC1))
    print(f"\nattach_nic over SSH: {result.seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    [iface] = [i for i in live(daemons).iterfind("devices/interface")
               if i.find("target").get("dev") == "one-7-1"]
    assert iface.find("mtu").get("size") == "1450"  # underlay 1500 - VXLAN 50, as deploy
    assert iface.find("virtualport").get("type") == "openvswitch"
    assert iface.find("mac").get("address") == "02:00:0a:00:07:02"
    assert "one-7-1" in _ports(lab)
    assert lab.host("one-0").vsctl("get", "interface", "one-7-1", "mtu") == "1450"
    result = run(lab, "detach_nic", "one-7", "02:00:0a:00:07:02", "7", "one-0",
                 input=_nic_xml(NIC1))
    print(f"detach_nic over SSH: {result.seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    assert _targets(daemons, "interface") == ["one-7-0"]
    assert "one-7-1" not in _ports(lab) and "one-7-0" in _ports(lab)
    again = run(lab, "detach_nic", "one-7", "02:00:0a:00:07:02", "7", "one-0", input="")
    assert again.returncode == 0, again.stderr  # gone already: success, as the stock driver


def test_attach_then_detach_of_a_qcow2_disk(node) -> None:
    lab, daemons = node
    data = action_data(vm_xml(disks=[_disk(1, "sdb")]))
    result = run(lab, "attach_disk", "one-7", f"{VM_DIR}/disk.1", "sdb", "1", "", "7", "one-0",
                 input=data)
    print(f"\nattach_disk over SSH: {result.seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    [disk] = [d for d in live(daemons).iterfind("devices/disk")
              if d.find("target").get("dev") == "sdb"]
    assert disk.find("source").get("file") == f"{VM_DIR}/disk.1"
    assert disk.find("driver").get("type") == "qcow2"
    result = run(lab, "detach_disk", "one-7", f"{VM_DIR}/disk.1", "sdb", "1", "7", "one-0",
                 input=data)
    print(f"detach_disk over SSH: {result.seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    assert _targets(daemons, "disk") == ["vda"]


def test_resize_disk_grows_the_running_qcow2_and_refuses_to_shrink(node) -> None:
    lab, daemons = node
    data = action_data(vm_xml())
    result = run(lab, "resize_disk", "one-7", "0", "32", "", "one-0", "7", "one-0", input=data)
    assert result.returncode == 0, result.stderr
    info = lab.ssh("one-0").run(["qemu-img", "info", "-U", "--output=json", f"{VM_DIR}/disk.0"])
    assert json.loads(info.stdout)["virtual-size"] == 32 << 20
    small = run(lab, "resize_disk", "one-7", "0", "16", "", "one-0", "7", "one-0", input=data)
    assert failed(small, "size: 16 MiB is smaller")
    info = lab.ssh("one-0").run(["qemu-img", "info", "-U", "--output=json", f"{VM_DIR}/disk.0"])
    assert json.loads(info.stdout)["virtual-size"] == 32 << 20


def test_resize_hot_plugs_a_vcpu(node) -> None:
    lab, daemons = node
    data = action_data(vm_xml(template="<VCPU>2</VCPU><RESIZE><VCPU>1</VCPU></RESIZE>"))
    assert daemons.virsh("vcpucount", "one-7", "--live", "--active").strip() == "1"
    result = run(lab, "resize", "one-7", "7", "one-0", input=data)
    assert result.returncode == 0, result.stderr
    assert daemons.virsh("vcpucount", "one-7", "--live", "--active").strip() == "2"


HOSTILE = "vdb'/><source file='/etc/shadow"


@pytest.mark.parametrize("action, args, data, field", [
    ("attach_disk", ["/etc/passwd", "sdb"], vm_xml(disks=[_disk(1, "sdb")]), "DISK_TARGET_PATH"),
    ("attach_disk", [f"{VM_DIR}/disk.2", "sdb"], vm_xml(disks=[_disk(2, "sdb")]),
     "DISK_TARGET_PATH (resolved): /etc/passwd is outside"),
    ("attach_disk", [f"{VM_DIR}/disk.1", "sdb"], vm_xml(disks=[_disk(1, "sdb", CACHE="evil")]),
     "DISK[DISK_ID=1]/CACHE"),
    ("attach_disk", [f"{VM_DIR}/disk.1", HOSTILE], vm_xml(disks=[_disk(1, HOSTILE)]), "target"),
    ("attach_disk", [f"{VM_DIR}/disk.1", "vda"], vm_xml(disks=[_disk(1, "vda")]),
     "vda is already a disk"),
    ("attach_nic", NIC1_ARGS[:1], vm_xml(nics=[SampleNic(1, "10.0.7.2", "02:00:0a:00:07:02",
                                                         extra=(("ATTACH", "YES"),
                                                                ("TARGET", "one-8-0")))]),
     "NIC[NIC_ID=1]/TARGET: one-8-0 is the port of VM 8"),
    ("attach_nic", NIC1_ARGS[:1], vm_xml(nics=[SampleNic(1, "10.0.7.2", "02:00:0a:00:07:02",
                                                         extra=(("ATTACH", "YES"),
                                                                ("SCRIPT", "/tmp/x")))]),
     "NIC[NIC_ID=1]/SCRIPT"),
    ("detach_disk", [f"{VM_DIR}/disk.1", "sdq"], vm_xml(), "target: one-7 has no disk on sdq"),
    ("detach_nic", ["02:00:0a:00:07:0;"], vm_xml(), "mac: '02:00:0a:00:07:0;' is not a MAC"),
    ("resize_disk", ["0", "-5"], vm_xml(), "size"),
    ("resize_disk", ["3", "64"], vm_xml(), "disk id: the VM has no DISK with DISK_ID 3"),
    ("resize", [], vm_xml(template="<VCPU>x</VCPU>"), "VM/TEMPLATE/VCPU"),
])
def test_bad_input_fails_naming_it_and_changes_nothing(node, action, args, data, field) -> None:
    lab, daemons = node
    before = etree.tostring(live(daemons))
    result = run(lab, action, "one-7", *args, input=action_data(data))
    assert failed(result, field), result.stderr
    assert etree.tostring(live(daemons)) == before
    assert "one-7-1" not in _ports(lab)
