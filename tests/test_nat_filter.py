"""The NAT gateway's filters, generations and conntrack failures, on real nft, conntrack and sshd.

Lab: one-0 is the gateway (10.0.0.41 on its "ENI" ens5; pool addresses 10.0.0.42, mapped
to VM 5, and 10.0.0.43, unmapped but with a port forward 8080 to VM 6), one-1 holds the
VMs: VM 5 in vnet 0 (VNI 100, 192.168.0.0/24), VM 6 and VM 7 in vnet 1 (VNI 101,
192.168.1.0/24). The "internet" client 10.0.0.100 on the ENI's link is also a VPC
neighbour: it routes the overlay subnets to the gateway. A second sshd on the gateway
listens on every address (port 2222), as a production sshd does.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time

import pytest
from conftest import installed_lab

from onemetal.lab import drive, frontend, netns, traffic
from onemetal.lab.host import ONEADMIN_ID, SSHD_CONFIG
from onemetal.lab.samples import SampleNic
from onemetal.nat.apply import ConntrackFailed, conntrack_delete, gateway_mac
from onemetal.nat.model import Vnet

HOSTS = ["one-0", "one-1"]
SSHD_PORT = 2222
RPFILTER = 'nft: chain rpfilter: rule 1 missing: iifname "onegw*" fib saddr . iif oif missing drop'

_BANNER = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.recv(64).decode(errors="replace").strip())
except OSError as exc:
    print("none", type(exc).__name__)
"""
# Prints each datagram's text and the source address it arrived from.
_UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(256)
    print(data.decode(errors="replace"), peer[0], flush=True)
"""
_UDP_FROM = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for _ in range(3):
    s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
"""


def nic(vm_id: int, vnet: int, spoofing: bool = True) -> SampleNic:
    extra = () if spoofing else (("FILTER_IP_SPOOFING", "NO"),)
    return SampleNic(0, f"192.168.{vnet}.{vm_id}", f"02:00:c0:a8:{vnet:02x}:{vm_id:02x}",
                     vlan_id=100 + vnet, mtu=None, extra=extra)


def start_open_sshd(host) -> None:
    """A real sshd on the gateway on every address, as production's listens."""
    ssh_dir = os.path.join(host.workdir, "ssh")
    config = os.path.join(ssh_dir, "sshd_open_config")
    with open(config, "w", encoding="ascii") as f:
        f.write(SSHD_CONFIG.format(address=f"0.0.0.0:{SSHD_PORT}",
                                   host_key=os.path.join(ssh_dir, "ssh_host_ed25519_key"),
                                   authorized_keys="/nonexistent")
                .replace("/run/sshd.pid", "/run/sshd-open.pid"))
    host.run(["/usr/sbin/sshd", "-f", config, "-E", os.path.join(ssh_dir, "sshd-open.log")])


def banner(client, ip: str, port: int = SSHD_PORT, timeout: float = 1.5) -> str:
    return client.run(["python3", "-c", _BANNER, ip, str(port), str(timeout)],
                      timeout=timeout + 10).stdout.strip()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    api_dir = tmp_path_factory.mktemp("api")
    with installed_lab(2, mesh=HOSTS) as lab:
        client = lab.add_uplink("one-0", "ens5", "10.0.0.41/24", "10.0.0.100/24")
        client.run(["ip", "route", "add", "192.168.0.0/16", "via", "10.0.0.41"])
        fe = frontend.start(lab, str(api_dir), nat_gateway="one-0", nat_interface="ens5")
        vms = {}
        for vm_id, vnet, spoofing in ((5, 0, True), (6, 1, True), (7, 1, False)):
            [vms[vm_id]] = drive.deploy(lab, "one-1", vm_id, [nic(vm_id, vnet, spoofing)])
            vms[vm_id].route_via(f"192.168.{vnet}.1")
            fe.add_vm(vm_id, nic(vm_id, vnet), vnet)
            traffic.listen(vms[vm_id], 5000 + vm_id, lab.workdir)
        traffic.listen(client, 7000, lab.workdir)
        udp_log = os.path.join(lab.workdir, "udp-7001.log")
        client.runner.spawn(["python3", "-u", "-c", _UDP_SERVER, "7001"], udp_log)
        start_open_sshd(lab.host("one-0"))
        for vnet in (0, 1):
            fe.onenat("vnet", "add", str(vnet), "--subnet", f"192.168.{vnet}.0/24", "--gateway",
                      f"192.168.{vnet}.1", "--snat", "10.0.0.41", "--vni", str(100 + vnet))
        fe.onenat("pool", "create", "aws", "--addresses", "3.3.3.2=10.0.0.42,3.3.3.3=10.0.0.43")
        fe.onenat("map", "5", "--eip", "3.3.3.2")
        fe.onenat("forward", "add", "10.0.0.43:8080/tcp", "192.168.1.6:5006")
        yield lab, client, vms, fe, udp_log


def test_vms_of_two_vnets_reach_the_outside_but_not_each_other(gw):
    lab, client, vms, fe, _ = gw
    assert traffic.seen_from(vms[5], "10.0.0.100", 7000) == "10.0.0.42"
    assert traffic.seen_from(vms[6], "10.0.0.100", 7000) == "10.0.0.41"
    assert not traffic.tcp_transfer(vms[5], "192.168.1.6", 5006, timeout=1)
    assert not traffic.tcp_transfer(vms[6], "192.168.0.5", 5005, timeout=1)
    assert not vms[5].ping("192.168.1.6", timeout=1)


def test_a_vpc_neighbour_routing_the_overlay_to_the_gateway_reaches_no_vm_directly(gw):
    lab, client, vms, fe, _ = gw
    assert not traffic.tcp_transfer(client, "192.168.0.5", 5005, timeout=1)
    assert not traffic.tcp_transfer(client, "192.168.1.6", 5006, timeout=1)
    assert not client.ping("192.168.0.5", timeout=1)


def test_mapped_traffic_and_port_forwards_still_work(gw):
    lab, client, vms, fe, _ = gw
    assert traffic.seen_from(client, "10.0.0.42", 5005) == "10.0.0.100"
    assert traffic.seen_from(client, "10.0.0.43", 8080) == "10.0.0.100"  # to VM 6's 5006
    # From another vnet through the forward's public address: leaves as VM 5's EIP.
    assert traffic.seen_from(vms[5], "10.0.0.43", 8080) == "10.0.0.42"


def test_the_outside_reaches_no_unmapped_pool_address_and_no_gateway_service_through_one(gw):
    lab, client, vms, fe, _ = gw
    assert banner(client, "10.0.0.41").startswith("SSH-2.0-")  # the primary address: untouched
    assert client.ping("10.0.0.41", timeout=1)
    # Unmapped (only 8080 is forwarded): reset before any socket, as by a closed port.
    assert banner(client, "10.0.0.43") == "none ConnectionRefusedError"
    assert not client.ping("10.0.0.43", timeout=1)
    assert banner(client, "10.0.0.42").startswith("none")      # mapped: VM 5's port 2222, shut


def test_a_vm_reaches_the_gateway_host_only_by_ping(gw):
    lab, client, vms, fe, _ = gw
    assert vms[5].ping("192.168.0.1", timeout=1)
    for address in ("192.168.0.1", "10.0.0.41", lab.host("one-0").address):
        assert banner(vms[5], address).startswith("none"), address


def spoofed_source_seen(vm, udp_log: str, source: str) -> str | None:
    """Send UDP to the client from `source` (not the VM's own address); the address the
    client saw it come from, or None when nothing arrived within 2 s."""
    token = secrets.token_hex(4)
    vm.run(["python3", "-c", _UDP_FROM, source, "10.0.0.100", "7001", token])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with open(udp_log, encoding="utf-8") as f:
            seen = [line.split()[1] for line in f if line.startswith(token)]
        if seen:
            return seen[0]
        time.sleep(0.1)
    return None


def test_removed_rpfilter_rule_lets_a_vm_borrow_another_vnets_eip_until_sync(gw):
    lab, client, vms, fe, udp_log = gw
    vm = vms[7]   # vnet 1, its port trusted to route (FILTER_IP_SPOOFING=NO): only MACs checked
    vm.run(["ip", "addr", "add", "192.168.0.5/32", "dev", "eth0"])  # VM 5's address, vnet 0
    # Its gateway's MAC, so that no ARP from the borrowed address is needed.
    vm.run(["ip", "neigh", "replace", "192.168.1.1", "lladdr",
            gateway_mac(Vnet(1, "192.168.1.0/24", "192.168.1.1", "10.0.0.41", 101)),
            "dev", "eth0"])
    gateway = lab.host("one-0")
    assert spoofed_source_seen(vm, udp_log, "192.168.0.5") is None
    gateway.run(["nft", "flush", "chain", "ip", "onemetal", "rpfilter"])
    try:
        assert spoofed_source_seen(vm, udp_log, "192.168.0.5") == "10.0.0.42"  # VM 5's EIP
        assert fe.onenat("plan").stdout.splitlines() == [RPFILTER]
    finally:
        fe.onenat("sync")
    assert spoofed_source_seen(vm, udp_log, "192.168.0.5") is None
    assert fe.onenat("plan").stdout.strip() == ""


INPUT_RULES = ["ip daddr @pool reject with tcp reset", "ip daddr @pool drop",
               'iifname "onegw*" ct state established,related accept',
               'iifname "onegw*" icmp type echo-request accept', 'iifname "onegw*" drop']


@pytest.mark.parametrize("change,plan,probe", [
    (["flush", "chain", "ip", "onemetal", "input"],
     [f"nft: chain input: rule {n} missing: {r}" for n, r in enumerate(INPUT_RULES, 1)], "pool"),
    (["chain", "ip", "onemetal", "forward", "{ policy accept; }"],
     ["nft: chain forward: type filter hook forward priority 0; policy accept; "
      "(want type filter hook forward priority 0; policy drop;)"], "vnets"),
])
def test_a_weakened_filter_is_a_difference_plan_names_and_sync_repairs(gw, change, plan, probe):
    lab, client, vms, fe, _ = gw
    gateway = lab.host("one-0")

    def opened() -> bool:
        if probe == "pool":
            return banner(client, "10.0.0.43").startswith("SSH-2.0-")
        return traffic.tcp_transfer(vms[5], "192.168.1.6", 5006, timeout=1)
    assert not opened()
    gateway.run(["nft", *change])
    try:
        assert opened()   # the filter is what stood in the way
        assert fe.onenat("plan").stdout.splitlines() == plan
    finally:
        fe.onenat("sync")
    assert not opened()
    assert fe.onenat("plan").stdout.strip() == ""


MISSING = object()


def push(lab, fe, **changes):
    """nat-apply on the gateway with the frontend's payload, some keys replaced (or removed:
    MISSING)."""
    data = json.loads(lab.frontend_cli(fe.env).run(
        [sys.executable, "-c", "from onemetal import config; from onemetal.nat import gateway; "
         "from onemetal.nat.store import Store; cfg = config.load(); "
         "print(gateway.payload(cfg, Store(cfg.nat.store)))"]).stdout)
    assert isinstance(data["generation"], int)  # what onenat sends
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not MISSING}
    return lab.ssh("one-0").run_entry("nat-apply", input=json.dumps(data), check=False)


def test_an_older_generation_is_refused_and_leaves_the_gateway_unchanged(gw):
    lab, client, vms, fe, _ = gw
    gateway = lab.host("one-0")
    path = gateway.path("/var/lib/onemetal/nat/generation")
    before = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    table = ["nft", "-j", "list", "table", "ip", "onemetal"]
    try:
        newer = push(lab, fe, generation=1000)
        assert newer.returncode == 0, newer.stderr
        assert os.stat(path).st_uid == ONEADMIN_ID
        assert open(path, encoding="utf-8").read().splitlines()[1:] == ["1000"]
        listed = gateway.run(table).stdout
        older = push(lab, fe, generation=999, mappings=[], forwards=[])
        assert older.returncode == 1
        assert "generation 999 is older than the applied 1000" in older.stderr, older.stderr
        assert gateway.run(table).stdout == listed
        assert traffic.tcp_transfer(client, "10.0.0.42", 5005)
        same = push(lab, fe, generation=1000)
        assert same.returncode == 0 and same.stdout.strip() == "CHANGED=NO", same.stdout
    finally:
        if before is None:
            os.unlink(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(before)


@pytest.mark.parametrize("value,reason", [(-1, "-1 is out of range (>= 0)"),
                                          ("7", "'7' is not an integer"),
                                          (True, "True is not an integer"),
                                          (MISSING, "is missing: the frontend's onenat")])
def test_a_bad_generation_is_refused_naming_the_field(gw, value, reason):
    lab, client, vms, fe, _ = gw
    result = push(lab, fe, generation=value)
    assert result.returncode == 1
    assert f"stdin/generation: {reason}" in result.stderr, result.stderr


@pytest.fixture
def scratch_ns():
    name = f"omct{secrets.token_hex(3)}"
    netns.add(name)
    try:
        yield netns.in_netns(name)
    finally:
        netns.delete(name)


def test_conntrack_delete_takes_none_matched_as_success_and_names_any_other_failure(scratch_ns):
    assert conntrack_delete(scratch_ns, ["-d", "10.9.9.9"]) == "0 flow entries have been deleted."
    scratch_ns.run(["conntrack", "-I", "-s", "1.1.1.1", "-d", "10.9.9.9", "-p", "tcp",
                    "--sport", "1", "--dport", "2", "--state", "ESTABLISHED", "-t", "60"])
    assert conntrack_delete(scratch_ns, ["-d", "10.9.9.9"]) == "1 flow entries have been deleted."
    with pytest.raises(ConntrackFailed) as failed:
        conntrack_delete(scratch_ns, ["-p", "tcpx", "-d", "10.9.9.9"])
    assert str(failed.value).startswith(
        "conntrack: `conntrack -D -p tcpx -d 10.9.9.9` failed with exit code 2: "
        "`tcpx' unsupported protocol"), str(failed.value)
