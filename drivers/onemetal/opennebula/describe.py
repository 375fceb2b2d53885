"""`describe-vm`: what onemetal reads from a VM payload, as JSON; the driver's view for an operator."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal.errors import InputError
from onemetal.opennebula import payload, values
from onemetal.opennebula.vm import VM

if TYPE_CHECKING:
    from onemetal.opennebula.vm import Disk, Nic


def _plain(view: "Nic | Disk") -> dict[str, object]:
    """A view's typed fields, without its raw attribute mapping."""
    return {k: v for k, v in view._asdict().items() if k != "attributes"}


def describe(vm: VM, vn_mad: str | None = None) -> dict[str, object]:
    nics = vm.nics_for(vn_mad) if vn_mad else vm.nics
    return {
        "id": vm.id, "name": vm.name, "deploy_id": vm.deploy_id, "host": vm.host,
        "nics": [_plain(n) |
                 {"rules": [r._asdict() for r in vm.rules_for(n)]} for n in nics],
        "disks": [_plain(d) for d in vm.disks],
        "context": dict(vm.context),
    }


def entry(args: Sequence[str], stdin: TextIO) -> str:
    """`describe-vm [VN_MAD]`, stdin: the VM as base64 (network drivers' form) or plain XML."""
    if len(args) > 1:
        raise InputError("expected at most one argument, a VN_MAD name", "argv")
    vn_mad = values.name(args[0], "argv[1] (VN_MAD)") if args else None
    vm = VM.from_xml(payload.read_payload(stdin.read(), "stdin", root="VM"))
    return json.dumps(describe(vm, vn_mad), sort_keys=True)
