"""resize (VCPU, memory) and resize_disk of a running VM, as OpenNebula's kvm driver.

resize <deploy id> <vmid> <host>, the action XML on stdin: VM/TEMPLATE/VCPU and MEMORY
are the new values, VM/TEMPLATE/RESIZE/* the old ones; memory is ballooned (setmem),
VCPUs hot-plugged (setvcpus --live --hotpluggable). MEMORY_RESIZE_MODE=HOTPLUG (DIMMs
on a NUMA cell) is not supported by onemetal.
resize_disk <deploy id> <disk id> <size MB> <drv message> <host> <vmid> <host>: the
disk's TARGET from the action XML, grown to the size (blockresize <size>M) after the
TM grew the image, tried 3 times 5 s apart while libvirt says "is in use", as stock. A
smaller size than the disk's is refused: nothing shrinks a guest's disk under it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

    from onemetal.opennebula.xmltree import Element

import libvirt

from onemetal.errors import InputError
from onemetal.opennebula import values
from onemetal.vmm.connection import retry_if
from onemetal.vmm.hotplug import LIVE, Domain, action_data, vm_of
from onemetal.vmm.hotplug_disk import target_name
from onemetal.vmm.lifecycle import deploy_id

MAX_VCPU = 4096
MAX_MEMORY_MB = 64 << 20  # 64 TiB


def _number(vm: Element, path: str, hi: int) -> int | None:
    raw = (vm.findtext(f"TEMPLATE/{path}") or "").strip()
    return values.integer(raw, f"VM/TEMPLATE/{path}", 1, hi) if raw else None


def resize(args: Sequence[str], stdin: TextIO) -> None:
    deploy = deploy_id(args)
    vm = vm_of(action_data(stdin))
    vcpu, vcpu_old = _number(vm, "VCPU", MAX_VCPU), _number(vm, "RESIZE/VCPU", MAX_VCPU)
    memory = _number(vm, "MEMORY", MAX_MEMORY_MB)
    memory_old = _number(vm, "RESIZE/MEMORY", MAX_MEMORY_MB)
    mode = (vm.findtext("TEMPLATE/MEMORY_RESIZE_MODE") or "").strip().upper()
    grow_memory = memory is not None and memory != memory_old
    if grow_memory and mode not in ("", "BALLOONING"):
        raise InputError(f"{mode!r} is not supported by onemetal (BALLOONING)",
                         "VM/TEMPLATE/MEMORY_RESIZE_MODE")
    with Domain(deploy) as domain:
        if grow_memory:
            domain.run("set memory", lambda d: d.setMemoryFlags(memory * 1024, LIVE))
        if vcpu is not None and vcpu != vcpu_old:
            flags = LIVE | libvirt.VIR_DOMAIN_VCPU_HOTPLUGGABLE
            domain.run("set VCPUs", lambda d: d.setVcpusFlags(vcpu, flags))


def _disk_target(vm: Element, disk_id: int) -> str:
    for disk in vm.findall("TEMPLATE/DISK"):
        if (disk.findtext("DISK_ID") or "").strip() == str(disk_id):
            field = f"DISK[DISK_ID={disk_id}]/TARGET"
            return target_name((disk.findtext("TARGET") or "").strip(), field)
    raise InputError(f"the VM has no DISK with DISK_ID {disk_id}", "disk id")


def resize_disk(args: Sequence[str], stdin: TextIO) -> None:
    usage = "resize_disk <deploy id> <disk id> <size MB> <drv message> <host>"
    deploy = deploy_id(args)
    if len(args) < 3:
        raise InputError(f"missing: {usage}", "argv")
    disk_id = values.integer(args[1], "disk id")
    size = values.integer(args[2], "size", 1, MAX_MEMORY_MB * 16) << 20
    target = _disk_target(vm_of(action_data(stdin)), disk_id)
    with Domain(deploy) as domain:
        capacity = domain.run("read disk size", lambda d: d.blockInfo(target, 0))[0]
        if size < capacity:
            raise InputError(f"{size >> 20} MiB is smaller than the disk's {capacity >> 20} "
                             f"MiB; disks only grow", "size")
        retry_if("is in use", lambda: domain.run("resize disk", lambda d: d.blockResize(
            target, size, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)))
