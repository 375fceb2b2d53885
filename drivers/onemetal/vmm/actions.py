"""The action table of VM_MAD onemetal: what becomes of each script OpenNebula's kvm driver has.

oned runs `<remotes>/vmm/<driver>/<action>` for the actions of one_vmm_exec.rb
(src/vmm_mad/exec/one_vmm_exec.rb); the stock scripts are src/vmm_mad/remotes/kvm/*.
Every one of them has a script in remotes/vmm/onemetal: the implemented ones call
their module (deploy, shutdown, ...), the others fail at once with one line,
`ERROR: <action>: not supported by onemetal; <why>`, and exit 1, so a VM never
waits on an action that will not happen. update_conf, update_sg, update_nic,
backup and backup_cancel are no VMM scripts: one_vmm_exec composes them from
prereconfigure/reconfigure and the TM, VNM and DS drivers.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Sequence, TextIO

from onemetal.errors import OneMetalError

# Files in the stock kvm directory that oned never runs as actions: sourced or called by them.
STOCK_HELPERS = ("kvmrc", "vgpu", "virtiofsd.sh", "vtpm_setup", "save.ceph", "restore.ceph")

UNSUPPORTED = {
    "exec": "commands in the guest (QEMU_GA_EXEC) need the qemu guest agent channel, "
            "which onemetal's guests do not get",
    "exec_cancel": "commands in the guest (QEMU_GA_EXEC) are not supported, so none runs",
    "poll": "VM monitoring is the KVM IM probes' (IM_MAD kvm), as for OpenNebula's own kvm driver",
}


class NotSupported(OneMetalError):
    """An action of the kvm driver onemetal does not do; nothing was changed."""


def refusal(action: str) -> Callable[[Sequence[str], TextIO], None]:
    """The entry of an unsupported action: it reads nothing and changes nothing."""
    why = UNSUPPORTED[action]

    def entry(_args: Sequence[str], _stdin: TextIO) -> None:
        raise NotSupported(f"not supported by onemetal; {why}")
    entry.__name__ = f"refuse_{action}"
    return entry


refuse_exec = refusal("exec")
refuse_exec_cancel = refusal("exec_cancel")
refuse_poll = refusal("poll")
