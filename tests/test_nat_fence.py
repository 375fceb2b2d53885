"""What a VM cannot reach through the NAT gateway although it is outside every vnet: the mesh
hosts' underlay addresses, the VXLAN port, link-local and nat.blocked_networks; and no IPv6
on the gateway ports. Parsing is pure; the rest runs on real nft, OVS, sysctl, sudo and sshd.

Lab: one-0 is the gateway (10.0.0.41 on ens5, the "internet" client 10.0.0.100 behind it),
one-1 holds VM 5 (vnet 0, 192.168.0.0/24, its port trusted to route so that it may send
IPv6 from any address). one-1 routes 10.0.0.41 back through one-0, as a VPC does: the
SNATed traffic of a VM reaches it from the gateway's own address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import time

import pytest
from conftest import installed_lab
from test_nat_filter import banner

from onemetal.errors import InputError
from onemetal.lab import drive, frontend, traffic
from onemetal.lab.samples import SampleNic
from onemetal.nat.apply import gateway_mac
from onemetal.nat.fence import allowed, blocked_networks
from onemetal.nat.model import Vnet

HOSTS = ["one-0", "one-1"]
VNET = Vnet(0, "192.168.0.0/24", "192.168.0.1", "10.0.0.41", 100)
V6_PORT = 2223

_UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(256)
    print(data.decode(errors="replace"), flush=True)
"""
_UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"""
_V6_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"gateway-v6\\n")
    c.close()
"""


# -- the configuration, checked on the frontend and again on the gateway ------------------------
def test_blocked_networks_always_hold_link_local_and_are_merged():
    assert blocked_networks([], "nat.blocked_networks") == {"169.254.0.0/16"}
    assert blocked_networks(["10.0.0.0/17", "10.0.128.0/17", "169.254.169.254/32"], "f") == {
        "10.0.0.0/16", "169.254.0.0/16"}


@pytest.mark.parametrize("items,field,reason", [
    (["10.0.0.1/16"], "f[0]", "has host bits set"),
    (["10.0.0.0/16", "fd00::/8"], "f[1]", "is not an IPv4 address"),
    ([16], "f[0]", "is not an IPv4 network"),
    ("10.0.0.0/16", "f", "is not a list")])
def test_a_bad_blocked_network_is_refused_naming_its_entry(items, field, reason):
    with pytest.raises(InputError) as bad:
        blocked_networks(items, "f")
    assert str(bad.value).startswith(f"{field}: ") and reason in str(bad.value), str(bad.value)


def test_allowed_entries_are_address_port_protocol():
    assert allowed(["10.0.0.2:53/udp", "10.0.0.2:53/TCP"], "f") == {
        ("10.0.0.2", "udp", 53), ("10.0.0.2", "tcp", 53)}
    for entry, reason in (("10.0.0.2:53", "is not ADDRESS:PORT/PROTO"),
                          ("10.0.0.2:0/udp", "out of range"), ("10.0.0.2:53/icmp", "is not one of")):
        with pytest.raises(InputError, match=reason):
            allowed([entry], "f")


# -- the lab -----------------------------------------------------------------------------------
def nic() -> SampleNic:
    return SampleNic(0, "192.168.0.5", "02:00:c0:a8:00:05", vlan_id=100, mtu=None,
                     extra=(("FILTER_IP_SPOOFING", "NO"),))


@pytest.fixture(scope="module")
def fenced(tmp_path_factory):
    api_dir = tmp_path_factory.mktemp("api")
    with installed_lab(2, mesh=HOSTS) as lab:
        client = lab.add_uplink("one-0", "ens5", "10.0.0.41/24", "10.0.0.100/24")
        gateway, other = lab.host("one-0"), lab.host("one-1")
        other.run(["ip", "route", "add", "10.0.0.41/32", "via", gateway.address])
        fe = frontend.start(lab, str(api_dir), nat_gateway="one-0", nat_interface="ens5")
        [vm] = drive.deploy(lab, "one-1", 5, [nic()])
        vm.route_via("192.168.0.1")
        fe.add_vm(5, nic(), 0)
        udp_log = os.path.join(lab.workdir, "udp.log")
        daemons = [client.runner.spawn(["python3", "-u", "-c", _UDP_SERVER, str(p)], udp_log)
                   for p in (4789, 4790)]
        daemons.append(traffic.listen(client, 7000, lab.workdir))
        daemons.append(gateway.runner.spawn(["python3", "-u", "-c", _V6_SERVER, str(V6_PORT)],
                                            os.path.join(lab.workdir, "v6.log")))
        fe.onenat("vnet", "add", "0", "--subnet", VNET.subnet, "--gateway", VNET.gateway,
                  "--snat", VNET.snat_ip, "--vni", str(VNET.vni))
        try:
            yield lab, client, vm, fe, udp_log
        finally:
            for daemon in daemons:
                daemon.kill()


def udp_arrives(vm, udp_log: str, port: int) -> bool:
    """Whether UDP from the VM to the client's `port` arrives within 2 s."""
    token = secrets.token_hex(4)
    vm.run(["python3", "-c", _UDP_SEND, "10.0.0.100", str(port), token])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with open(udp_log, encoding="utf-8") as f:
            if token in f.read():
                return True
        time.sleep(0.1)
    return False


def plan_and_sync_repair(fe) -> list[str]:
    try:
        return fe.onenat("plan").stdout.splitlines()
    finally:
        fe.onenat("sync")


def test_a_vm_reaches_the_outside_but_no_mesh_host_underlay_address(fenced):
    lab, client, vm, fe, _ = fenced
    other = lab.host("one-1")
    assert traffic.seen_from(vm, "10.0.0.100", 7000) == "10.0.0.41"
    assert banner(vm, other.address, 22) == "none TimeoutError"
    lab.host("one-0").run(["nft", "flush", "set", "ip", "onemetal", "hosts"])
    assert banner(vm, other.address, 22).startswith("SSH-2.0-")  # the set stood in the way
    assert sorted(plan_and_sync_repair(fe)) == sorted(
        f"nft: + hosts {h.address}" for h in map(lab.host, HOSTS))
    assert banner(vm, other.address, 22) == "none TimeoutError"
    assert fe.onenat("plan").stdout.strip() == ""


def forward_rule_handle(gateway, text: str) -> int:
    listed = json.loads(gateway.run(["nft", "-j", "-a", "list", "chain", "ip", "onemetal",
                                     "forward"]).stdout)["nftables"]
    return next(i["rule"]["handle"] for i in listed if "rule" in i and text in json.dumps(
        i["rule"]["expr"]))


def test_a_vm_sends_no_udp_to_the_vxlan_port_of_any_address(fenced):
    lab, client, vm, fe, udp_log = fenced
    gateway = lab.host("one-0")
    assert udp_arrives(vm, udp_log, 4790)
    assert not udp_arrives(vm, udp_log, 4789)
    handle = forward_rule_handle(gateway, '"field": "dport"}}, "right": 4789')
    gateway.run(["nft", "delete", "rule", "ip", "onemetal", "forward", "handle", str(handle)])
    assert udp_arrives(vm, udp_log, 4789)  # the rule stood in the way
    assert plan_and_sync_repair(fe) == [
        'nft: chain forward: rule 4 missing: iifname "onegw*" udp dport 4789 drop']
    assert not udp_arrives(vm, udp_log, 4789)


def gateway_link_local() -> str:
    """The EUI-64 link-local address the kernel would give the gateway port."""
    octets = bytes.fromhex(gateway_mac(VNET).replace(":", ""))
    eui = bytes([octets[0] ^ 2, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def v6_reach(vm, deadline: float = 4.0) -> str:
    """TCP from the VM to the gateway's link-local address; retried while its DAD runs."""
    end = time.monotonic() + deadline
    while True:
        seen = banner(vm, f"{gateway_link_local()}%eth0", V6_PORT, timeout=1)
        if not seen.startswith("none") or time.monotonic() > end:
            return seen
        time.sleep(0.3)


def test_the_gateway_port_has_no_ipv6_so_a_vm_reaches_nothing_over_link_local(fenced):
    lab, client, vm, fe, _ = fenced
    gateway, port = lab.host("one-0"), "onegw0"
    vm.run(["sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=0"])
    flag = f"/proc/sys/net/ipv6/conf/{port}/disable_ipv6"
    assert gateway.run(["cat", flag]).stdout.strip() == "1"
    assert gateway.run(["ip", "-6", "-j", "addr", "show", "dev", port]).stdout.strip() in (
        "", "[]", '[{"addr_info":[]}]')
    assert v6_reach(vm, deadline=1).startswith("none")
    gateway.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{port}.accept_dad=0"])
    gateway.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{port}.disable_ipv6=0"])
    assert v6_reach(vm) == "gateway-v6"  # what the sysctl keeps out
    assert plan_and_sync_repair(fe) == [f"gateway ports: IPv6 off on {port}"]
    assert v6_reach(vm, deadline=1).startswith("none")
    assert fe.onenat("plan").stdout.strip() == ""
