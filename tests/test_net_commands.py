"""The commands a VNM action runs on a real host (strace on its sshd), and the recorded underlay MTU."""

from __future__ import annotations

import json
import os
import time

import pytest
from conftest import installed_lab
from test_net_mesh import flow_cookies

from onemetal.lab import drive
from onemetal.lab.exec_trace import traced
from onemetal.lab.samples import SampleNic, vnm_vm_xml

HOSTS = ["one-0", "one-1"]
PEERS = "/var/lib/onemetal/mesh/peers.json"
PROBE = "/var/tmp/one/im/kvm-probes.d/host/system/onemetal_mesh"


def vm_nic(vm_id: int) -> SampleNic:
    return SampleNic(0, f"192.168.5.{vm_id}", f"02:00:c0:a8:05:{vm_id:02x}", vlan_id=500, mtu=None)


@pytest.fixture(scope="module")
def lab():
    with installed_lab(2, mesh=HOSTS) as lab:
        yield lab


def tools(commands):
    """Each command as its program and first word that is not an option (sudo -n left out)."""
    out = []
    for argv in commands:
        program, *words = argv[2:] if argv[:2] == ("sudo", "-n") else argv
        out.append(" ".join([program, *[w for w in words if not w.startswith("-")][:1]]))
    return out


def columns_of(read):
    return next(w for w in read if w.startswith("--columns=")).split("=")[1].split(",")


def ovsdb_records(lab, host) -> int:
    """Records in the host's OVSDB log: every committed transaction adds some."""
    h = lab.host(host)
    log = h.run(["ovsdb-tool", "show-log", os.path.join(h.workdir, "conf.db")]).stdout
    return sum(line.startswith("record ") for line in log.splitlines())


def traced_action(lab, host, action, args, xml):
    with traced(lab.host(host), lab.workdir) as trace:
        result = drive.check(drive.vnm(lab, host, action, args, xml), action)
    return result, trace.commands(f"/{action}")


def port_mtu(lab, host, port) -> int:
    return int(lab.host(host).vsctl("get", "interface", port, "mtu_request"))


def set_underlay_mtu(lab, host, mtu):
    """The host's tunnel interface (br-phy holds its underlay address) changes its MTU."""
    h = lab.host(host)
    h.vsctl("set", "interface", "br-phy", f"mtu_request={mtu}")
    deadline = time.monotonic() + 10
    while h.run(["cat", "/sys/class/net/br-phy/mtu"]).stdout.strip() != str(mtu):
        assert time.monotonic() < deadline, f"br-phy on {host} never reached MTU {mtu}"
        time.sleep(0.05)


def test_no_change_post_reads_ovsdb_and_flows_once_and_writes_nothing(lab):
    xml = vnm_vm_xml(51, "one-0", [vm_nic(51)])
    drive.deploy(lab, "one-0", 51, [vm_nic(51)])
    before = ovsdb_records(lab, "one-0")
    result, commands = traced_action(lab, "one-0", "post", ["deploy-51", "one-0"], xml)
    assert tools(commands) == ["ovs-vsctl list", "ovs-ofctl dump-flows"], commands
    assert (result.stdout, result.stderr) == ("", "")
    assert ovsdb_records(lab, "one-0") == before  # no transaction
    # The read asks for the columns the action needs: no counters, no BFD status.
    columns = columns_of(commands[0])
    assert "statistics" not in columns and "bfd_status" not in columns
    assert "name" in columns and "ofport" in columns


def test_clean_removes_the_port_with_one_read_of_ovsdb(lab):
    xml = vnm_vm_xml(52, "one-0", [vm_nic(52)])
    [vm] = drive.deploy(lab, "one-0", 52, [vm_nic(52)])
    _, commands = traced_action(lab, "one-0", "clean", ["one-0"], xml)
    # No dump-flows: the port's flows go by their cookie group, the shared ones are rewritten.
    assert tools(commands) == ["ovs-vsctl list", "ovs-vsctl del-port", "ovs-ofctl add-flows",
                               "ovs-appctl dpctl/flush-conntrack"], commands
    assert vm.port not in lab.host("one-0").vsctl("list-ports", "br-mesh").split()
    flows = lab.host("one-0").run(["ovs-ofctl", "dump-flows", "br-mesh"]).stdout
    assert "02:00:c0:a8:05:34" not in flows  # the port's own flows went with it


def test_clean_without_a_dump_leaves_the_flows_a_full_diff_would(lab):
    """VM 58 shares VM 57's VNI (the VNI's flood flows name both), VM 59 has one of its own."""
    first = vm_nic(57)
    drive.deploy(lab, "one-0", 57, [first])
    alone = flow_cookies(lab, "one-0")
    others = {58: vm_nic(58), 59: SampleNic(0, "192.168.6.59", "02:00:c0:a8:06:3b", vlan_id=501,
                                            mtu=None)}
    for vm_id, n in others.items():
        drive.deploy(lab, "one-0", vm_id, [n])
    assert len(flow_cookies(lab, "one-0")) > len(alone)
    for vm_id, n in others.items():
        result = drive.check(drive.vnm(lab, "one-0", "clean", ["one-0"],
                                       vnm_vm_xml(vm_id, "one-0", [n])), "clean")
        assert "shared ones rewritten" in result.stderr, result
    assert flow_cookies(lab, "one-0") == alone
    # A post diffs every flow against the bridge: it finds nothing to change after the cleans.
    before = ovsdb_records(lab, "one-0")
    result, commands = traced_action(lab, "one-0", "post", ["deploy-57", "one-0"],
                                     vnm_vm_xml(57, "one-0", [first]))
    assert (result.stdout, result.stderr) == ("", "") and ovsdb_records(lab, "one-0") == before
    assert tools(commands) == ["ovs-vsctl list", "ovs-ofctl dump-flows"], commands


def test_the_probe_reads_bfd_status_in_its_one_command_and_a_sync_learns_the_mtu(lab):
    with traced(lab.host("one-0"), lab.workdir) as trace:
        report = lab.ssh("one-0").run([PROBE]).stdout
    [read] = trace.commands(PROBE)
    assert tools([read]) == ["ovs-vsctl list"] and "bfd_status" in columns_of(read)
    assert 'ONEMETAL_MESH_MTU="1450"' in report and 'TUNNEL_IP="172.31.255.11"' in report, report
    with traced(lab.host("one-0"), lab.workdir) as trace:
        drive.mesh(lab, "sync", HOSTS)
    # Nothing to change: the MTU learned (without sudo), the bridge and the flows read.
    assert tools(trace.commands("/onemetal/call")) == ["ip addr", "ovs-vsctl list",
                                                       "ovs-ofctl dump-flows"]


def test_underlay_mtu_comes_from_the_last_sync_and_follows_a_change_at_the_next(lab):
    set_underlay_mtu(lab, "one-0", 1400)
    try:
        # Recorded at the last sync: the action does not see the change (and runs no `ip`).
        xml = vnm_vm_xml(53, "one-0", [vm_nic(53)])
        drive.check(drive.vnm(lab, "one-0", "pre", [], xml), "pre")
        [vm] = drive.deploy(lab, "one-0", 53, [vm_nic(53)])
        assert port_mtu(lab, "one-0", vm.port) == 1450
        synced = drive.mesh(lab, "sync", HOSTS).stdout
        assert "one-0: PEERS=1 CHANGED=YES" in synced and "one-1: PEERS=1 CHANGED=NO" in synced
        assert "one-0: PEERS=1 CHANGED=YES\n  ~ underlay MTU: 1500 -> 1400 " in synced, synced
        stored = json.loads(lab.ssh("one-0").run(["cat", PEERS]).stdout.split("\n", 1)[1])
        assert stored["underlay_mtu"] == 1400
        [new] = drive.deploy(lab, "one-0", 54, [vm_nic(54)])
        assert port_mtu(lab, "one-0", new.port) == 1350
        # A running VM's port takes the new maximum at its next action.
        assert port_mtu(lab, "one-0", vm.port) == 1450
        drive.check(drive.vnm(lab, "one-0", "post", ["deploy-53", "one-0"], xml), "post")
        assert port_mtu(lab, "one-0", vm.port) == 1350
    finally:
        set_underlay_mtu(lab, "one-0", 1500)
        drive.mesh(lab, "sync", HOSTS)


def test_a_peer_list_from_before_the_mtu_record_learns_it_until_the_next_sync(lab):
    path = lab.host("one-1").path(PEERS)
    with open(path, encoding="utf-8") as f:
        header, body = f.read().split("\n", 1)
    legacy = json.loads(body)
    del legacy["underlay_mtu"]
    with open(path, "w", encoding="utf-8") as f:  # in place: keeps oneadmin as its owner
        f.write(header + "\n" + json.dumps(legacy, indent=1, sort_keys=True) + "\n")
    xml = vnm_vm_xml(55, "one-1", [vm_nic(55)])
    drive.check(drive.vnm(lab, "one-1", "pre", [], xml), "pre")
    lab.add_vm("one-1", "vm55", "br-mesh", "192.168.5.55/24", mac=vm_nic(55).mac, port="one-55-0")
    result, commands = traced_action(lab, "one-1", "post", ["deploy-55", "one-1"], xml)
    assert tools(commands)[0] == "ip addr", commands  # the fallback: learned, as before the record
    assert port_mtu(lab, "one-1", "one-55-0") == 1450
    synced = drive.mesh(lab, "sync", HOSTS).stdout
    assert "one-1: PEERS=1 CHANGED=YES" in synced and "underlay MTU" not in synced, synced
    _, commands = traced_action(lab, "one-1", "post", ["deploy-55", "one-1"], xml)
    assert "ip addr" not in tools(commands), commands


def test_sync_fails_for_a_host_whose_tunnel_address_is_on_no_interface(lab):
    before = lab.ssh("one-1").run(["cat", PEERS]).stdout
    result = drive.mesh(lab, "sync", ["one-0=172.31.255.10", "one-1=172.31.255.77"], check=False)
    assert result.returncode == 1
    assert "one-1: FAILED" in result.stdout and "172.31.255.77" in result.stdout, result.stdout
    assert lab.ssh("one-1").run(["cat", PEERS]).stdout == before
    drive.mesh(lab, "sync", HOSTS)
