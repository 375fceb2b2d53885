"""Drive the network driver in the lab the way oned does: VNM steps over SSH, VMs plugged like libvirt."""

from __future__ import annotations

import sys
from typing import Sequence

from onemetal.lab.lab import Lab
from onemetal.lab.oned import Step, StepResult, ssh_stream
from onemetal.lab.samples import VN_MAD, SampleNic, b64, vnm_vm_xml
from onemetal.lab.vm import LabVM
from onemetal.run import Result

BRIDGE = "br-mesh"


def vnm(lab: Lab, host: str, action: str, args: Sequence[str], vm_xml: str) -> StepResult:
    """One VNM action, as a step of oned's ssh stream (base64 stdin through the heredoc)."""
    [result] = ssh_stream(lab.ssh(host), [Step(f"vnm/{VN_MAD}/{action}", tuple(args), b64(vm_xml))])
    return result


def check(result: StepResult, what: str) -> StepResult:
    if result.code != 0:
        raise AssertionError(f"{what} failed ({result.code}): {result.stderr.strip()}")
    return result


def deploy(lab: Lab, host: str, vm_id: int, nics: Sequence[SampleNic], rules: str = "",
           prefixlen: int = 24) -> list[LabVM]:
    """pre, then the "hypervisor" plugs one lab VM per NIC, then post; the guest MTU follows the port's."""
    xml = vnm_vm_xml(vm_id, host, nics, rules=rules)
    check(vnm(lab, host, "pre", [], xml), f"pre of VM {vm_id}")
    vms = [lab.add_vm(host, f"vm{vm_id}-{n.nic_id}", BRIDGE, f"{n.ip}/{prefixlen}", mac=n.mac,
                      port=f"one-{vm_id}-{n.nic_id}") for n in nics]
    check(vnm(lab, host, "post", [f"deploy-{vm_id}", host], xml), f"post of VM {vm_id}")
    for vm in vms:
        lab.follow_port_mtu(vm)
    return vms


def mesh(lab: Lab, action: str, hosts: Sequence[str], *extra: str, check: bool = True) -> Result:
    """`onemetal mesh sync|plan --host ...` run on the frontend, as an operator or a hook would."""
    argv = [sys.executable, "-m", "onemetal.cli.onemetal", "mesh", action, *extra]
    for name in hosts:
        argv += ["--host", name]
    return lab.frontend_cli().run(argv, check=check)
