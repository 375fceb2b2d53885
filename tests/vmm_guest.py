"""A lab host with its own libvirtd and one running TCG guest, one-7 (a NIC on the mesh bridge and
a 16 MiB qcow2 disk, 1 of 2 VCPUs), created by root; and oned's action XML for the VMM actions
that read it on stdin. Shared by the hot-plug and snapshot tests."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

from conftest import installed_lab
from lxml import etree

from onemetal.lab import Lab, libvirt
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.samples import SampleNic, vnm_vm_xml
from onemetal.run import Result

VMM = "/var/tmp/one/vmm/onemetal"
VM_DIR = "/var/lib/one/datastores/0/7"
DATA = os.path.join(os.path.dirname(__file__), "data", "vmm", "deployment.0")
CONF = HOST_CONF + '[storage]\nprofile = "none"\n'
NIC0 = SampleNic(0, "10.0.7.1", "02:00:0a:00:07:01", mtu=None)


def vm_xml(nics: Sequence[SampleNic] = (), disks: Sequence[str] = (), template: str = "") -> str:
    """The VM as oned sends it: NIC 0 plus `nics`, DISK 0 (vda) plus `disks` (DISK elements)."""
    disk0 = "<DISK><DISK_ID>0</DISK_ID><TARGET>vda</TARGET><DRIVER>qcow2</DRIVER></DISK>"
    text = vnm_vm_xml(7, "one-0", [NIC0, *nics])
    extra = "".join(f"<TEMPLATE>{d}</TEMPLATE>" for d in (disk0, *disks))
    return text.replace("</VM>", extra + (f"<TEMPLATE>{template}</TEMPLATE>" if template else "")
                        + "</VM>")


def action_data(vm: str) -> str:
    """oned's <VMM_DRIVER_ACTION_DATA> (src/vmm/VirtualMachineManager.cc#format_message)."""
    return (f"<VMM_DRIVER_ACTION_DATA><HOST>one-0</HOST><MIGR_HOST/><DEPLOY_ID>one-7</DEPLOY_ID>"
            f"<DISK_TARGET_PATH/><TM_COMMAND/>{vm}<DATASTORE><ID>0</ID></DATASTORE>"
            "</VMM_DRIVER_ACTION_DATA>")


def _deployment() -> str:
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    disk = (f"\t\t<disk type='file' device='disk'><source file='{VM_DIR}/disk.0'/>"
            f"<target dev='vda'/><driver name='qemu' type='qcow2' cache='none'/></disk>\n")
    # q35 with native PCIe hot-plug: a guest without an OS never powers an empty root port on,
    # so QEMU unplugs from it at once (ACPI hot-plug, PIIX's or ICH9's, waits for the guest's
    # OS). Raw QEMU options are what deploy refuses from a tenant, so the lab creates this one.
    ports = "<controller type='pci' index='0' model='pcie-root'/>" + "".join(
        f"<controller type='pci' index='{i}' model='pcie-root-port'/>" for i in range(1, 12))
    text = text.replace("<type arch='x86_64'>", "<type arch='x86_64' machine='q35'>")
    text = text.replace("<memory>", "<vcpu current='1'>2</vcpu><memory>")
    text = text.replace("</domain>", "<qemu:commandline><qemu:arg value='-global'/><qemu:arg "
                        "value='ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'/>"
                        "</qemu:commandline></domain>")
    devices = disk + ports + "<controller type='scsi' model='virtio-scsi' index='0'/>\n"
    return text.replace("\t\t<interface", devices + "\t\t<interface", 1)


@contextlib.contextmanager
def guest() -> Iterator[tuple[Lab, libvirt.Libvirt]]:
    with installed_lab(2, mesh=["one-0", "one-1"]) as lab:
        host = lab.host("one-0")
        host.write_conf(CONF)
        daemons = libvirt.start(host, lab.record)  # type: ignore[arg-type]
        oneadmin = lab.ssh("one-0")
        try:
            oneadmin.run(["sh", "-c", f"mkdir -p {VM_DIR} && cat > {VM_DIR}/vm.xml"],
                         input=vm_xml())
            oneadmin.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{VM_DIR}/disk.0", "16M"])
            oneadmin.run(["sh", "-c", f"cat > {VM_DIR}/deployment.0"], input=_deployment())
            daemons.virsh("create", f"{VM_DIR}/deployment.0")
            yield lab, daemons
        finally:
            daemons.stop()


def run(lab: Lab, action: str, *args: str, input: str = "") -> Result:
    return lab.ssh("one-0").run([f"{VMM}/{action}", *args], input=input, check=False)


def live(daemons: libvirt.Libvirt) -> etree._Element:
    return etree.fromstring(daemons.virsh("dumpxml", "one-7").encode())


def failed(result: Result, field: str) -> bool:
    """oned's error block naming the field, nothing on stdout, exit != 0."""
    return (result.returncode != 0 and result.stdout == "" and field in result.stderr
            and "ERROR MESSAGE --8<------" in result.stderr)
