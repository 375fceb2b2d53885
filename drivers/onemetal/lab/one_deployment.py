"""What oned writes for a VM's deploy besides the VM document: the libvirt deployment file
(src/vmm/LibVirtDriverKVM.cc), the VMM action data (src/vmm/VirtualMachineManager.cc) and
the TM transfer files (src/tm/TransferManager.cc).

The deployment file keeps LibVirtDriverKVM's element order and tab layout for the VMs
the demo runs: file disks in the VM's directory, the context CD, OVS bridge NICs, one
VNC console and oned's default features (vmm_exec_kvm.conf: ACPI on). oned quotes
attributes with plain single quotes and wraps text in CDATA; here attribute values are
escaped too, so a hostile value cannot end the attribute.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from onemetal.lab.one_datastore import ds_xml
from onemetal.lab.one_vm import DATASTORES, STIME, TM_MAD, OneVm, cdata, leaf, vm_xml

EMULATOR = "/usr/bin/qemu-system-x86_64"  # Debian's; oned's default is qemu-kvm-one
OPENNEBULA_VERSION = "6.10.0"
NIC_MODEL = "virtio"  # vmm_exec_kvm.conf NIC = [ MODEL = "virtio" ]


def attr(value: object) -> str:
    """escape_xml_attr's single quotes, with what would end them escaped."""
    return "'" + escape(str(value), {"'": "&apos;", '"': "&quot;"}) + "'"


def disk_bus(target: str, cdrom: bool = False) -> str:
    """get_disk_bus on a pc machine (no q35): a CD and hd? on ide, vd? on virtio, sd? on scsi."""
    if cdrom or target[:1] not in ("v", "s"):
        return "ide"
    return "virtio" if target.startswith("v") else "scsi"


def _boot(vm: OneVm, device: str) -> str:
    """A device's <boot order/> (its ORDER, from OS/BOOT), where LibVirtDriverKVM writes it."""
    order = vm.boot_order(device)
    return f"\t\t\t<boot order={attr(order)}/>\n" if order else ""


def _disks(vm: OneVm, vm_dir: str) -> list[str]:
    out = [f"\t\t<disk type='file' device='disk'>\n"
           f"\t\t\t<source file={attr(f'{vm_dir}/disk.{d.disk_id}')}/>\n"
           f"\t\t\t<target dev={attr(d.target)} bus={attr(disk_bus(d.target))}/>\n"
           + _boot(vm, f"disk{d.disk_id}")
           + f"\t\t\t<driver name='qemu' type={attr(d.format)} cache='none'/>\n"
           "\t\t</disk>\n" for d in vm.disks]
    if vm.context:
        out.append("\t\t<disk type='file' device='cdrom'>\n"
                   f"\t\t\t<source file={attr(f'{vm_dir}/disk.{vm.context_disk_id}')}/>\n"
                   f"\t\t\t<target dev='hda' bus={attr(disk_bus('hda', cdrom=True))}/>\n"
                   "\t\t\t<readonly/>\n"
                   "\t\t\t<driver name='qemu' type='raw' cache='none'/>\n"
                   "\t\t</disk>\n")
    return out


def _interfaces(vm: OneVm) -> list[str]:
    return ["\t\t<interface type='bridge'>\n"
            "\t\t\t<virtualport type='openvswitch'/>\n"
            f"\t\t\t<source bridge={attr(n.bridge)}/>\n"
            f"\t\t\t<mac address={attr(n.mac)}/>\n"
            f"\t\t\t<target dev={attr(f'one-{vm.vm_id}-{n.nic_id}')}/>\n"
            + _boot(vm, f"nic{n.nic_id}")
            + f"\t\t\t<model type={attr(NIC_MODEL)}/>\n"
            "\t\t</interface>\n" for n in vm.nics]


def _metadata(vm: OneVm, vm_dir: str) -> str:
    fields = (("system_datastore", cdata(vm_dir)), ("name", cdata(vm.name)),
              ("uname", cdata(vm.uname)), ("uid", vm.uid), ("gname", cdata(vm.gname)),
              ("gid", vm.gid), ("opennebula_version", OPENNEBULA_VERSION),
              ("stime", STIME), ("deployment_time", STIME + 10), ("pci_devices", ""))
    return ("\t<metadata>\n\t\t<one:vm xmlns:one=\"http://opennebula.org/xmlns/libvirt/1.0\">\n"
            + "".join(f"\t\t\t<one:{k}>{v}</one:{k}>\n" for k, v in fields)
            + "\t\t</one:vm>\n\t</metadata>\n")


def deployment(vm: OneVm, *, domain_type: str = "qemu",
               system_ds_path: str = DATASTORES) -> str:
    """deployment.0 for `vm` (LibVirtDriverKVM::deployment_description); domain_type "qemu" is
    TCG, as the lab runs guests, "kvm" what oned writes on a real host; system_ds_path: the
    hosts' DATASTORE_LOCATION, which holds <system ds id>/<vmid>."""
    vm_dir = f"{system_ds_path}/{vm.system_ds_id}/{vm.vm_id}"
    return (f"<domain type={attr(domain_type)} xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
            f"\t<name>one-{vm.vm_id}</name>\n"
            f"\t<title>{cdata(vm.name)}</title>\n"
            f"\t<vcpu>{vm.vcpu}</vcpu>\n"
            f"\t<cputune>\n\t\t<shares>{1024 * vm.vcpu}</shares>\n\t</cputune>\n"
            f"\t<memory>{vm.memory_mb * 1024}</memory>\n"
            "\t<os>\n\t\t<type arch='x86_64'>hvm</type>\n\t</os>\n"
            "\t<devices>\n"
            f"\t\t<emulator>{cdata(EMULATOR)}</emulator>\n"
            + "".join(_disks(vm, vm_dir)) + "".join(_interfaces(vm))
            + f"\t\t<graphics type='vnc' listen='0.0.0.0' port={attr(5900 + vm.vm_id)}/>\n"
            "\t</devices>\n"
            "\t<features>\n\t\t<acpi/>\n\t</features>\n"
            + _metadata(vm, vm_dir) + "</domain>\n")


def _leaf_or_empty(tag: str, value: str) -> str:
    return leaf(tag, value) if value else f"<{tag}/>"


def vmm_action_data(vm: OneVm, host: str, *, migr_host: str = "", deploy_id: str = "",
                    ds_id: int = 0, datastore: str = "") -> str:
    """VirtualMachineManager::format_message (before base64): the deployment files for a
    deploy (no deploy_id yet), else none; `datastore`: the system DATASTORE document, by
    default a shared one of ds_id (one_datastore.ds_xml)."""
    files = (f"<LOCAL_DEPLOYMENT_FILE>/var/lib/one/vms/{vm.vm_id}/deployment.0"
             f"</LOCAL_DEPLOYMENT_FILE><REMOTE_DEPLOYMENT_FILE>{escape(vm.system_dir)}"
             "/deployment.0</REMOTE_DEPLOYMENT_FILE>") if not deploy_id else \
        "<LOCAL_DEPLOYMENT_FILE/><REMOTE_DEPLOYMENT_FILE/>"
    return ("<VMM_DRIVER_ACTION_DATA>" + leaf("HOST", host) + _leaf_or_empty("MIGR_HOST", migr_host)
            + _leaf_or_empty("DEPLOY_ID", deploy_id) + files
            + "<CHECKPOINT_FILE/><TM_COMMAND/><TM_COMMAND_ROLLBACK/><DISK_TARGET_PATH/>"
            + vm_xml(vm) + (datastore or ds_xml(ds_id, "system", base_path=f"{DATASTORES}/{ds_id}",
                                                 ds_type="SYSTEM_DS"))
            + "</VMM_DRIVER_ACTION_DATA>")


def transfer_prolog(vm: OneVm, frontend: str = "frontend") -> str:
    """The prolog's transfer file: per disk `CLONE|LN <tm_mad> <frontend>:<SOURCE>
    <host>:<system dir>/disk.<id> <vmid> <image ds>` (prolog_transfer_command), then
    `CONTEXT <tm_mad> <context.sh> <host>:<system dir>/disk.<n> <vmid> <system ds>`;
    `frontend` is oned's own name for itself (get_nebula_hostname, oned.conf HOSTNAME)."""
    lines = [f"{'CLONE' if d.clone else 'LN'} {TM_MAD} {frontend}:{d.source} "
             f"{vm.host}:{vm.system_dir}/disk.{d.disk_id} {vm.vm_id} {d.image_ds_id}\n"
             for d in vm.disks]
    if vm.context:
        lines.append(f"CONTEXT {TM_MAD} /var/lib/one/vms/{vm.vm_id}/context.sh "
                     f"{vm.host}:{vm.system_dir}/disk.{vm.context_disk_id} {vm.vm_id} "
                     f"{vm.system_ds_id}\n")
    return "".join(lines)


def transfer_epilog(vm: OneVm) -> str:
    """The epilog's transfer file (trigger_epilog, no disk saved): `DELETE` of each disk with
    its image datastore, then of the VM's directory with the system datastore."""
    lines = [f"DELETE {TM_MAD} {vm.host}:{vm.system_dir}/disk.{d.disk_id} {vm.vm_id} "
             f"{d.image_ds_id}\n" for d in vm.disks]
    return "".join(lines) + f"DELETE {TM_MAD} {vm.host}:{vm.system_dir} {vm.vm_id} {vm.system_ds_id}\n"
