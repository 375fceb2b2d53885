"""`onemetal demo`: the reference deployment on one machine, as far as the drivers built so far go.

Hosts one-0..one-N as namespaces with OVS, nftables and sshd; onemetal installed
into a frontend prefix and synced to the hosts as `onehost sync` does; each
host told its mesh peers over SSH; a VM payload decoded on a host through the
same ssh/heredoc path oned uses; two VMs on one host's bridge reaching each other.
"""

from __future__ import annotations

import json
import os
from typing import Callable

from onemetal import install
from onemetal.lab import Lab
from onemetal.lab import samples
from onemetal.lab.oned import Step, ssh_stream


def run_demo(hosts: int, underlay_mtu: int, say: Callable[[str], None]) -> int:
    failures = 0
    with Lab(hosts=hosts, underlay_mtu=underlay_mtu) as lab:
        say(f"lab up: {hosts} hosts in {lab.timings['start']:.2f} s "
            f"({', '.join(f'{h.name}={h.address}' for h in lab.hosts)})")
        prefix = os.path.join(lab.workdir, "frontend", "var", "lib", "one")
        layout = install.Layout(prefix=prefix, etc=os.path.join(lab.workdir, "frontend", "etc"),
                                source=install.source_root())
        plan = install.install(layout, dry_run=False, apply_oned_conf=False, out=[])
        lab.sync_remotes(os.path.join(prefix, "remotes"))
        say(f"installed {len(plan)} files into the frontend, remotes synced to every host")

        pool = samples.b64(samples.host_pool_xml(
            [(i, h.name, h.address) for i, h in enumerate(lab.hosts)]))
        for host in lab.hosts:
            result = lab.ssh(host.name).run_entry("mesh-peers", [host.name], input=pool, check=False)
            failures += result.returncode != 0
            say(f"{host.name}: mesh peers stored: {result.stdout.strip() or result.stderr.strip()}")

        vm_xml = samples.vnm_vm_xml(42, "one-1", [samples.SampleNic(0, "192.168.0.2", "02:00:c0:a8:00:02")])
        [step] = ssh_stream(lab.ssh("one-1"), [Step("onemetal/call", ("describe-vm",),
                                                    samples.b64(vm_xml))])
        failures += step.code != 0
        nic = json.loads(step.stdout)["nics"][0] if step.code == 0 else {}
        say(f"one-1: VM 42 as a driver reads it: NIC {nic.get('nic_id')} bridge={nic.get('bridge')} "
            f"vni={nic.get('vlan_id')} ip={nic.get('ip')} (exit {step.code})")

        host = lab.host("one-1")
        host.vsctl("--may-exist", "add-br", "onebr0", "--", "set", "bridge", "onebr0",
                   "datapath_type=netdev")
        vm_a = lab.add_vm("one-1", "vm-a", "onebr0", "192.168.0.2/24")
        lab.add_vm("one-1", "vm-b", "onebr0", "192.168.0.3/24")
        reached = vm_a.ping("192.168.0.3", count=3)
        failures += not reached
        say(f"one-1: vm-a -> vm-b ping {'ok' if reached else 'FAILED'}")
    say(f"lab down in {lab.timings['teardown']:.2f} s; "
        f"{'all steps ok' if not failures else f'{failures} steps FAILED'}")
    return 1 if failures else 0
