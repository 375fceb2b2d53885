"""Security groups with a bound, on real OVS: a hostile rule is refused over SSH as oned runs `pre`,
nothing is applied and the host lock stays free; legitimate port ranges filter; conjunctive
matches give OVS the verdicts the rules say."""

from __future__ import annotations

import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import installed_lab
from test_net_mesh import config_columns, flow_cookies, nic
from test_net_secgroups import ODD_PORTS, oracle, random_packet, random_rule

from onemetal.lab import drive, traffic
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.oned import error_message_6_0, error_message_7x
from onemetal.lab.samples import sg_rule_xml, vnm_vm_xml
from onemetal.net.secgroups import CONJUNCTION_PRIORITY, compile_filter, conjunction_flows

HOSTS = ["one-0", "one-1"]
LOCK_TIMEOUT = 3.0  # a `pre` that waited for the held lock would fail with LockTimeout soon
FIELD = "NIC[NIC_ID=0]/SECURITY_GROUP_RULE[SECURITY_GROUP_ID=101]"
HOSTILE = sg_rule_xml(101, "TCP", "inbound", range=ODD_PORTS, ip="10.0.0.1", size=16_000_000)
# Root inside the host: take the net lock as an action would, say so, keep it until stdin closes.
_HOLD = """
import fcntl, os, select, sys
fd = os.open("/var/lib/onemetal/locks/local.net.lock", os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
select.select([sys.stdin], [], [], 30)
"""


@pytest.fixture(scope="module")
def lab():
    with installed_lab(2, mesh=HOSTS) as lab:
        for name in HOSTS:
            lab.host(name).write_conf(HOST_CONF + f"[core]\nlock_timeout = {LOCK_TIMEOUT}\n")
        yield lab


def hostile_pre(lab, vm_id):
    xml = vnm_vm_xml(vm_id, "one-0", [nic(vm_id, 100, security_groups="101")], rules=HOSTILE)
    start = time.monotonic()
    result = drive.vnm(lab, "one-0", "pre", [], xml)
    return result, time.monotonic() - start


def assert_refused(result):
    assert result.code == 1, result.stderr
    for message in (error_message_6_0(result.stderr), error_message_7x(result.stderr)):
        assert (f"{FIELD}: rule 1 of security group 101 (inbound, PROTOCOL=TCP, "
                "RANGE=1,3,5,7,...,65535 (32768 entries)") in message, message
        assert "net.max_flows_per_nic (2000)" in message


def test_hostile_rule_fails_pre_naming_it_and_applies_nothing(lab):
    drive.deploy(lab, "one-0", 60, [nic(60, 100)])  # the bridge and the lock exist already
    before = config_columns(lab, "one-0"), flow_cookies(lab, "one-0")
    result, seconds = hostile_pre(lab, 61)
    print(f"hostile pre over SSH refused in {seconds:.2f} s")
    assert_refused(result)
    assert (config_columns(lab, "one-0"), flow_cookies(lab, "one-0")) == before


def test_a_concurrent_pre_of_another_vm_succeeds(lab):
    legit = vnm_vm_xml(62, "one-0", [nic(62, 100)])
    with ThreadPoolExecutor(2) as pool:
        hostile = pool.submit(hostile_pre, lab, 63)
        other = pool.submit(drive.vnm, lab, "one-0", "pre", [], legit)
        assert_refused(hostile.result()[0])
        drive.check(other.result(), "pre of VM 62")


def test_the_refusal_does_not_wait_for_the_host_lock(lab):
    host = lab.host("one-0")
    holder = subprocess.Popen([*host.runner.prefix, "/usr/bin/python3", "-c", _HOLD],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result, seconds = hostile_pre(lab, 64)
        print(f"refused in {seconds:.2f} s with the lock held elsewhere")
        assert holder.poll() is None  # still holding it: the refusal came before the lock
        assert_refused(result)
    finally:
        holder.stdin.close()
        holder.wait(timeout=35)


def serve(lab, rules, vm_id):
    """A server VM on one-0 with `rules`, a client on one-1 whose address the rules name."""
    [server] = drive.deploy(lab, "one-0", vm_id, [nic(vm_id, 300, security_groups="9")],
                            rules=rules)
    [client] = drive.deploy(lab, "one-1", vm_id + 1, [nic(vm_id + 1, 300, security_groups="")])
    return server, client


def connects(lab, server, client, ports):
    for port in ports:
        traffic.listen(server, port, lab.workdir)
    time.sleep(0.5)  # the listeners start
    return {p: traffic.tcp_transfer(client, server.ip, p, size=1024, timeout=1.5) for p in ports}


def test_port_ranges_filter_in_the_lab(lab):
    rules = sg_rule_xml(9, "TCP", "inbound", range="8000:8010,9000")
    server, client = serve(lab, rules, 70)
    assert connects(lab, server, client, (8000, 8005, 8010, 8011, 9000, 9001)) == {
        8000: True, 8005: True, 8010: True, 8011: False, 9000: True, 9001: False}


def test_ports_over_several_networks_filter_in_the_lab(lab):
    # 4 port masks x 3 networks (192.168.0.71..76): a conjunctive match. The client is .73.
    rules = sg_rule_xml(9, "TCP", "inbound", range="7000:7002,7100,7200", ip="192.168.0.71",
                        size=6)
    server, client = serve(lab, rules, 72)
    assert connects(lab, server, client, (7001, 7100, 7003)) == {
        7001: True, 7100: True, 7003: False}


def trace_allows(host, bridge, packet) -> bool:
    """OVS's verdict for `packet` (ofproto/trace: no packet is sent)."""
    six = packet.family == 6
    ip, local = ("ipv6", "fd99::1") if six else ("nw", "10.200.0.1")
    remote, near = ("src", "dst") if packet.direction == "inbound" else ("dst", "src")
    what = {6: f"tcp{'6' if six else ''},tcp_dst={packet.port}",
            17: f"udp{'6' if six else ''},udp_dst={packet.port}",
            1: f"icmp,icmp_type={packet.icmp_type}",
            58: f"icmp6,icmpv6_type={packet.icmp_type}"}.get(
                packet.proto, f"{'ipv6' if six else 'ip'},nw_proto={packet.proto}")
    direction = 0 if packet.direction == "inbound" else 1
    flow = (f"in_port=LOCAL,reg6={direction},{what},"
            f"{ip}_{remote}={packet.remote},{ip}_{near}={local}")
    out = host.run(["ovs-appctl", "ofproto/trace", bridge, flow]).stdout
    final = next(line for line in out.splitlines() if line.startswith("Final flow:"))
    return "reg5=0x1" in final


def whitelist_lines(f, ofport: int) -> list[str]:
    """The Filter as flows: table 1 inbound, table 2 outbound, chosen by reg6."""
    allow = "load:1->NXM_NX_REG5[]"
    lines = ["delete", "add table=0,priority=10,reg6=0,actions=resubmit(,1)",
             "add table=0,priority=10,reg6=1,actions=resubmit(,2)"]
    for table, plain, conjunctions in ((1, f.inbound, f.inbound_conjunctions),
                                       (2, f.outbound, f.outbound_conjunctions)):
        lines += [",".join(p for p in (f"add table={table},priority=100", m, f"actions={allow}") if p)
                  for m in (plain if plain is not None else ("",))]
        lines += [f"add table={table},priority={CONJUNCTION_PRIORITY},{m},actions={a}"
                  for m, a in conjunction_flows(conjunctions, ofport, allow)]
    return lines


def test_conjunctive_whitelists_give_ovs_the_rules_verdicts(lab):
    """Plain and conjunctive flows straight in a scratch bridge (no conntrack), traced by OVS."""
    host, bridge = lab.host("one-1"), "br-sgtest"
    host.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
               "fail_mode=secure")
    rng = random.Random(5)
    traced = conjunctions = 0
    try:
        for round_ in range(15):
            rules = [random_rule(rng) for _ in range(4)]
            f = compile_filter(rules, 100_000)
            conjunctions += len(f.inbound_conjunctions) + len(f.outbound_conjunctions)
            host.run(["ovs-ofctl", "--bundle", "add-flows", bridge, "-"],
                     input="\n".join(whitelist_lines(f, 7 + round_)) + "\n")
            for _ in range(12):
                packet = random_packet(rng)
                assert trace_allows(host, bridge, packet) == oracle(rules, packet), (rules, packet)
                traced += 1
    finally:
        host.vsctl("--if-exists", "del-br", bridge)
    print(f"{traced} packets traced by OVS, {conjunctions} conjunctions")
    assert conjunctions > 5
