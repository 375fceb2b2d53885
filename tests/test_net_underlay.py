"""What the underlay sees: no loop in the full mesh, and the MTU that fits a jumbo underlay."""

from __future__ import annotations

import os
import re
import time

import pytest
from conftest import installed_lab

from onemetal.lab import drive, traffic
from onemetal.lab.samples import SampleNic

IDLE = 10.0
BFD_MS = 300  # the lab's net.bfd_interval_ms


def vm_nic(vm_id: int, subnet: int = 3) -> SampleNic:
    return SampleNic(0, f"192.168.{subnet}.{vm_id}", f"02:00:c0:a8:{subnet:02x}:{vm_id:02x}",
                     vlan_id=300, mtu=None)


@pytest.fixture(scope="module")
def mesh4():
    with installed_lab(4, mesh=[f"one-{i}" for i in range(4)]) as lab:
        vms = [drive.deploy(lab, h.name, 71 + i, [vm_nic(71 + i)])[0]
               for i, h in enumerate(lab.hosts)]
        yield lab, vms


def tunnel_flow_packets(host) -> int:
    """Data frames that came out of the tunnels (BFD has a flow of its own, matching udp)."""
    ports = [p for p in host.vsctl("list-ports", "br-mesh").split() if p.startswith("vx")]
    ofports = {host.vsctl("get", "interface", p, "ofport") for p in ports}
    out = host.run(["ovs-ofctl", "dump-flows", "br-mesh", "table=0"]).stdout
    return sum(int(m.group(1)) for line in out.splitlines()
               if (m := re.search(r"n_packets=(\d+),.*in_port=(\d+) ", line)) and m.group(2) in ofports
               and "udp" not in line)


def tunnel_interface_packets(host) -> int:
    total = 0
    for port in host.vsctl("list-ports", "br-mesh").split():
        if port.startswith("vx"):
            stats = host.vsctl("get", "interface", port, "statistics")
            total += sum(int(v) for k, v in re.findall(r"(rx_packets|tx_packets)=(\d+)", stats))
    return total


def vswitchd_cpu_seconds(host) -> float:
    with open(host.path("/run/openvswitch/ovs-vswitchd.pid"), encoding="ascii") as f:
        pid = f.read().strip()
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_one_broadcast_reaches_each_other_host_once(mesh4):
    lab, vms = mesh4
    time.sleep(1)  # BFD up, nothing in flight
    before = [traffic.rx_packets(vm) for vm in vms]
    traffic.broadcast(vms[0], "192.168.3.255")
    time.sleep(1.5)
    got = [traffic.rx_packets(vm) - b for vm, b in zip(vms, before)]
    assert got == [0, 1, 1, 1]


def test_mesh_stays_quiet_when_idle(mesh4):
    lab, vms = mesh4
    traffic.broadcast(vms[1], "192.168.3.255")  # the kind of frame that loops in a plain mesh
    time.sleep(1)
    start = time.monotonic()
    flows0 = [tunnel_flow_packets(h) for h in lab.hosts]
    ifaces0 = [tunnel_interface_packets(h) for h in lab.hosts]
    cpu0 = [vswitchd_cpu_seconds(h) for h in lab.hosts]
    time.sleep(IDLE)
    flows1 = [tunnel_flow_packets(h) for h in lab.hosts]
    ifaces1 = [tunnel_interface_packets(h) for h in lab.hosts]
    cpu1 = [vswitchd_cpu_seconds(h) for h in lab.hosts]
    elapsed = time.monotonic() - start
    assert flows1 == flows0  # not one data frame came out of a tunnel
    # Only BFD moves the interface counters: 3 peers x (rx + tx) at one packet per interval is
    # the nominal rate; OVS sends somewhat faster (jitter, poll sequences: about 1.7x measured),
    # so allow 3x. A loop is tens of thousands of packets per second, far beyond either.
    bfd_budget = 3 * 2 * elapsed / (BFD_MS / 1000) * 3
    assert all(b - a <= bfd_budget for a, b in zip(ifaces0, ifaces1)), (ifaces0, ifaces1, bfd_budget)
    assert all(b - a < 0.1 * elapsed for a, b in zip(cpu0, cpu1)), (cpu0, cpu1)  # < 10 % of a core


def test_jumbo_underlay_gives_vm_mtu_8951():
    with installed_lab(2, mesh=["one-0", "one-1"], underlay_mtu=9001) as lab:
        [a] = drive.deploy(lab, "one-0", 81, [vm_nic(81, 4)])
        [b] = drive.deploy(lab, "one-1", 82, [vm_nic(82, 4)])
        assert lab.host("one-0").vsctl("get", "interface", a.port, "mtu") == "8951"
        assert a.ping(b.ip, size=8951 - 28, dont_fragment=True)
        big = a.run(["ping", "-n", "-c", "1", "-M", "do", "-s", str(8952 - 28), b.ip], check=False)
        assert big.returncode != 0 and "mtu=8951" in big.stdout + big.stderr
