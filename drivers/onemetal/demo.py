"""`onemetal demo`: the reference deployment on one machine, as far as the drivers built so far go.

Hosts one-0..one-N as namespaces with OVS, nftables and sshd; onemetal installed
into a frontend prefix and synced to the hosts as `onehost sync` does; the VXLAN
mesh built by `onemetal mesh sync`; VMs of two vnets deployed through the
network driver's pre/post over SSH as oned runs them; then what an operator
would check: same-vnet VMs reach each other across hosts, other vnets do not,
the MTU is the underlay's minus 50, and the hosts' probe reports every peer up. Then
the NAT gateway: `onenat` maps an Elastic IP to one VM; an "internet" client reaches
it through the EIP's address, it leaves from that address, and other VMs from the SNAT one.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from onemetal import install
from onemetal.lab import Lab, drive, frontend, traffic
from onemetal.lab.samples import SampleNic


def _nic(vm_id: int, vni: int) -> SampleNic:
    return SampleNic(0, f"192.168.0.{vm_id}", f"02:00:c0:a8:00:{vm_id:02x}", vlan_id=vni, mtu=None)


def run_demo(hosts: int, underlay_mtu: int, say: Callable[[str], None]) -> int:
    failures = 0

    def step(ok: bool, text: str) -> None:
        nonlocal failures
        failures += not ok
        say(f"{'ok    ' if ok else 'FAILED'} {text}")

    with Lab(hosts=hosts, underlay_mtu=underlay_mtu) as lab:
        say(f"lab up: {hosts} hosts in {lab.timings['start']:.2f} s "
            f"({', '.join(f'{h.name}={h.address}' for h in lab.hosts)})")
        prefix = os.path.join(lab.workdir, "frontend", "var", "lib", "one")
        layout = install.Layout(prefix=prefix, etc=os.path.join(lab.workdir, "frontend", "etc"),
                                systemd=os.path.join(lab.workdir, "frontend", "systemd"),
                                source=install.source_root())
        plan = install.install(layout, dry_run=False, apply_oned_conf=False, out=[])
        lab.sync_remotes(os.path.join(prefix, "remotes"))
        say(f"installed {len(plan)} files into the frontend, remotes synced to every host")

        names = [h.name for h in lab.hosts]
        synced = drive.mesh(lab, "sync", names, check=False)
        step(synced.returncode == 0, f"onemetal mesh sync: {synced.stdout.count('CHANGED=YES')} "
                                     f"hosts got {hosts - 1} tunnel ports each")
        # vnet A (VNI 100) on every host, vnet B (VNI 200) on one-0 only; one subnet for both.
        a = [drive.deploy(lab, name, 10 + i, [_nic(10 + i, 100)])[0] for i, name in enumerate(names)]
        [b] = drive.deploy(lab, names[0], 20, [_nic(20, 200)])
        say(f"deployed {len(a)} VMs on vnet VNI 100 (one per host) and 1 on VNI 200 "
            "(pre, libvirt-style plug, post)")
        step(all(a[0].ping(vm.ip, count=2) for vm in a[1:]),
             f"{a[0].name} on {a[0].host} pings every VNI 100 VM on the other hosts")
        step(not b.ping(a[1].ip, count=1, timeout=1), f"{b.name} (VNI 200) cannot reach "
                                                      f"{a[1].name} (VNI 100), same subnet")
        mtu = int(lab.host(names[0]).vsctl("get", "interface", a[0].port, "mtu"))
        step(mtu == underlay_mtu - 50, f"VM port MTU {mtu} = underlay {underlay_mtu} - 50; a "
                                       f"{mtu}-byte don't-fragment ping crosses: "
                                       f"{a[0].ping(a[1].ip, size=mtu - 28, dont_fragment=True)}")
        time.sleep(1)  # BFD sessions come up
        probe = lab.ssh(names[0]).run(["/var/tmp/one/im/kvm-probes.d/host/system/onemetal_mesh"])
        status = [line for line in probe.stdout.splitlines() if "STATUS" in line or "UP=" in line]
        step('ONEMETAL_MESH_STATUS="ok"' in probe.stdout, f"{names[0]} probe: {' '.join(status)}")

        # NAT: names[0] is the gateway (10.0.0.41 on its "ENI"), an internet client behind it.
        client = lab.add_uplink(names[0], "ens5", "10.0.0.41/24", "10.0.0.100/24")
        fe = frontend.start(lab, os.path.join(lab.workdir, "frontend-api"),
                            nat_gateway=names[0], nat_interface="ens5")
        for i, vm in enumerate(a):
            vm.route_via("192.168.0.1")
            fe.add_vm(10 + i, _nic(10 + i, 100), 0)
        fe.onenat("vnet", "add", "0", "--subnet", "192.168.0.0/24", "--gateway", "192.168.0.1",
                  "--snat", "10.0.0.41", "--vni", "100")
        fe.onenat("pool", "create", "demo", "--addresses", "3.3.3.2=10.0.0.42")
        mapped = fe.onenat("map", "11", check=False)
        said = (mapped.stdout or mapped.stderr).strip().splitlines()
        step(mapped.returncode == 0, f"onenat map 11: {said[0] if said else ''}")
        traffic.listen(a[1], 5011, lab.workdir)
        traffic.listen(client, 7000, lab.workdir)
        time.sleep(0.3)  # the listeners start
        step(traffic.tcp_transfer(client, "10.0.0.42", 5011),
             f"internet client -> EIP address 10.0.0.42 reaches {a[1].name} on {a[1].host} (TCP)")
        seen = traffic.seen_from(a[1], "10.0.0.100", 7000)
        step(seen == "10.0.0.42", f"{a[1].name} reaches the internet from its EIP address ({seen})")
        seen = traffic.seen_from(a[0], "10.0.0.100", 7000)
        step(seen == "10.0.0.41", f"{a[0].name} (no EIP) leaves from the SNAT address ({seen})")
    say(f"lab down in {lab.timings['teardown']:.2f} s; "
        f"{'all steps ok' if not failures else f'{failures} steps FAILED'}")
    return 1 if failures else 0
