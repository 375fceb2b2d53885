"""Tenant isolation on real OVS: a NIC's TARGET cannot take another port, and a port's
conntrack zone is emptied when the port comes and goes."""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time

import pytest
from conftest import installed_lab
from test_net_mesh import config_columns, flow_cookies

from onemetal.lab import drive, traffic
from onemetal.lab.oned import error_message_6_0, error_message_7x
from onemetal.lab.samples import SampleNic, sg_rule_xml, vnm_vm_xml
from onemetal.net.bridge import tunnel_name

HOSTS = ["one-0", "one-1"]
FIELD = "NIC[NIC_ID=0]/TARGET"


def nic(vm_id: int, vni: int = 100, target: str | None = None, **options: object) -> SampleNic:
    extra = (("TARGET", target),) if target else ()
    return SampleNic(0, f"192.168.0.{vm_id}", f"02:00:c0:a8:00:{vm_id:02x}", vlan_id=vni,
                     extra=extra, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lab():
    with installed_lab(2, mesh=HOSTS) as lab:
        yield lab


@pytest.fixture(scope="module")
def victim(lab):
    [vm] = drive.deploy(lab, "one-0", 5, [nic(5)])
    return vm


def state(lab, host="one-0"):
    return config_columns(lab, host), flow_cookies(lab, host)


def refused(lab, action: str, args: list[str], xml: str, reason: str) -> None:
    result = drive.vnm(lab, "one-0", action, args, xml)
    assert result.code == 1, result.stderr
    message = error_message_6_0(result.stderr)
    assert FIELD in message and FIELD in error_message_7x(result.stderr), message
    assert re.search(reason, message), message


ATTACKS = [  # (what, TARGET, actions, reason in the error)
    ("the victim's port", "one-5-0", ("pre", "post", "clean"), "port of VM 5 NIC 0"),
    ("the host's underlay device", "eth0", ("pre", "post", "clean"), "port of bridge br-phy"),
    ("a mesh tunnel", tunnel_name("172.31.255.11"), ("pre", "post", "clean"), "reserved"),
    ("a gateway's port to be", "onegw200", ("pre", "post", "clean"), "reserved"),
    ("the mesh bridge itself", "br-mesh", ("pre", "post", "clean"), "the bridge itself"),
]


@pytest.mark.parametrize("what,target,actions,reason", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_target_naming_a_port_not_the_nics_is_refused_and_nothing_changes(
        lab, victim, what, target, actions, reason):
    xml = vnm_vm_xml(9, "one-0", [nic(9, vni=200, target=target)])
    before = state(lab)
    args = {"pre": [], "post": ["deploy-9", "one-0"], "clean": ["one-0"]}
    for action in actions:
        refused(lab, action, args[action], xml, reason)
        assert state(lab) == before, f"{action} with TARGET={target} ({what}) changed the host"
    assert lab.host("one-0").vsctl("get", "interface", "one-5-0", "external_ids:onemetal-vm") \
        == '"5"'


def test_devices_that_are_not_a_vms_are_refused(lab, victim):
    host = lab.host("one-0")
    lab.add_uplink("one-0", "ens5", "10.0.0.41/24", "10.0.0.1/24")  # a veth holding an address
    foreign = lab.add_vm("one-0", "foreign", "br-mesh", "192.168.0.90/24", port="lab-foreign")
    host.vsctl("add-port", "br-mesh", "onegw7", "--", "set", "interface", "onegw7", "type=internal",
               "external_ids:onemetal-owner=onemetal", "external_ids:onemetal-role=vm",
               "external_ids:onemetal-vm=-1", "external_ids:onemetal-nic=7")
    cases = [("ens5", "holds the host's address"), (foreign.port, "onemetal did not create"),
             ("onegw7", "reserved"), ("lo", "not a VM's tap or veth")]
    before = state(lab)
    for target, reason in cases:
        xml = vnm_vm_xml(9, "one-0", [nic(9, vni=200, target=target)])
        refused(lab, "post", ["deploy-9", "one-0"], xml, reason)
        if target in (foreign.port, "onegw7"):  # on the bridge: clean must not take it either
            refused(lab, "clean", ["one-0"], xml, reason)
    assert state(lab) == before
    for device in ("ens5", "lo"):  # not on the bridge: clean has nothing of it to remove
        xml = vnm_vm_xml(9, "one-0", [nic(9, vni=200, target=device)])
        drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
    assert state(lab) == before


def test_a_tap_of_the_tenants_choice_works_and_clean_removes_only_it(lab, victim):
    n = nic(10, target="tap10x")
    xml = vnm_vm_xml(10, "one-0", [n])
    drive.check(drive.vnm(lab, "one-0", "pre", [], xml), "pre")
    vm = lab.add_vm("one-0", "vm10", "br-mesh", f"{n.ip}/24", mac=n.mac, port="tap10x")
    drive.check(drive.vnm(lab, "one-0", "post", ["deploy-10", "one-0"], xml), "post")
    vm.set_mtu(1450)
    assert vm.ping(victim.ip, count=2)
    drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
    ports = lab.host("one-0").vsctl("list-ports", "br-mesh").split()
    assert "tap10x" not in ports and "one-5-0" in ports


def zone_of(lab, port: str) -> int:
    return int(lab.host("one-0").vsctl("get", "interface", port, "ofport"))


def connections(lab, zone: int, server_ip: str, port: int) -> list[str]:
    out = lab.host("one-0").run(["ovs-appctl", "dpctl/dump-conntrack", f"zone={zone}"]).stdout
    return [line for line in out.splitlines()
            if re.search(rf"orig=\(src=[^,]+,dst={re.escape(server_ip)},sport=\d+,dport={port}\)", line)]


def filtered_server(lab, vm_id: int, port: int) -> tuple[object, int, str]:
    """A VM whose NIC has rules (so its port uses conntrack), with one connection open to it."""
    rules = sg_rule_xml(4, "TCP", "inbound", range=str(port))
    n = nic(vm_id, security_groups="4")
    [server] = drive.deploy(lab, "one-0", vm_id, [n], rules=rules)
    [client] = drive.deploy(lab, "one-1", vm_id + 100, [nic(vm_id + 100)])
    traffic.listen(server, port, lab.workdir)
    time.sleep(0.3)
    traffic.open_flow(client, server.ip, port, 30, lab.workdir)
    zone = zone_of(lab, server.port)
    for _ in range(30):
        if connections(lab, zone, server.ip, port):
            return server, zone, vnm_vm_xml(vm_id, "one-0", [n], rules=rules)
        time.sleep(0.1)
    raise AssertionError(f"no connection to {server.ip}:{port} in zone {zone}")


def test_clean_empties_the_zone_of_the_port_it_removes(lab):
    server, zone, xml = filtered_server(lab, 30, 6000)
    drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"], xml), "clean")
    assert connections(lab, zone, server.ip, 6000) == []


def test_a_vanished_port_is_swept_with_its_zone(lab):
    server, zone, _ = filtered_server(lab, 31, 6001)
    lab.host("one-0").run(["ip", "link", "del", server.port])  # destroyed without clean
    drive.deploy(lab, "one-0", 35, [nic(35)])  # any later action on the host sweeps
    assert connections(lab, zone, server.ip, 6001) == []


def test_a_vm_reusing_the_port_number_and_ip_starts_with_an_empty_zone(lab):
    server, zone, _ = filtered_server(lab, 32, 6002)
    host = lab.host("one-0")
    # The port and its flows vanish behind the driver's back (an OVSDB restored from a backup):
    # no clean, no stale row, nothing left to sweep; only the add can empty the zone.
    host.vsctl("del-port", "br-mesh", server.port)
    host.run(["ovs-ofctl", "del-flows", "br-mesh", f"cookie={0x6f6d << 48 | zone << 32:#x}/"
              "0xffffffff00000000"])
    assert connections(lab, zone, server.ip, 6002)  # still there
    n = SampleNic(0, server.ip, "02:00:c0:a8:00:e1", vlan_id=100, security_groups="4")
    rules = sg_rule_xml(4, "TCP", "inbound", range="6002")
    xml = vnm_vm_xml(33, "one-0", [n], rules=rules)
    drive.check(drive.vnm(lab, "one-0", "pre", [], xml), "pre")
    later = lab.add_vm("one-0", "vm33", "br-mesh", f"{n.ip}/24", mac=n.mac, port="one-33-0")
    host.vsctl("set", "interface", later.port, f"ofport_request={zone}")
    drive.check(drive.vnm(lab, "one-0", "post", ["deploy-33", "one-0"], xml), "post")
    assert zone_of(lab, later.port) == zone
    assert connections(lab, zone, server.ip, 6002) == []


def test_a_device_that_appears_while_the_action_waits_for_the_lock_is_checked(lab, victim):
    """The device checks run under the lock on what is added: a device created after the
    action's first look (here while it waits for the lock) is refused, not added unchecked."""
    host = lab.host("one-0")
    xml = vnm_vm_xml(66, "one-0", [nic(66, target="tap66x")])
    results = []
    fd = os.open(os.path.join(host.workdir, "state", "locks", "local.net.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        action = threading.Thread(target=lambda: results.append(drive.vnm(lab, "one-0", "pre", [],
                                                                          xml)))
        action.start()
        time.sleep(2)  # the action is past its checks of the VM document, waiting for the lock
        host.run(["ip", "link", "add", "tap66x", "type", "veth", "peer", "name", "tap66y"])
        host.run(["ip", "addr", "add", "10.66.0.1/24", "dev", "tap66x"])
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    action.join(timeout=60)
    assert not action.is_alive() and len(results) == 1
    assert results[0].code == 1 and "holds the host's address" in results[0].stderr, results[0]
    assert "tap66x" not in host.vsctl("list-ports", "br-mesh").split()
