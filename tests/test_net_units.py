"""Pure parts of the network driver: security groups, the pipeline, plans, membership, vnet checks."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess

import pytest
from conftest import REPO
from lxml import etree

from onemetal.config import NetConfig
from onemetal.errors import ConfigError, InputError
from onemetal.lab.samples import SampleNic, b64, host_pool_xml, nic_xml, sg_rule_xml
from onemetal.net import peers, pipeline
from onemetal.net.bridge import (BridgeState, TunnelSpec, VmPortSpec, bridge_commands,
                                 port_commands, tunnel_name)
from onemetal.net.mesh import mtu_lines
from onemetal.net.mtu import nic_mtu, overlay_mtu, underlay_mtu
from onemetal.net.peers import Mesh, peers_from_pool
from onemetal.net.secgroups import OPEN, compile_filter, port_masks, rule_matches
from onemetal.net.sync import members, parse_host_list
from onemetal.net.vnet import check as check_vnet
from onemetal.opennebula.resources import Host, host_pool
from onemetal.opennebula.vm import Nic, SecurityGroupRule
from onemetal.reconcile import diff
from onemetal.run import Runner

REPO_REMOTES = os.path.join(REPO, "remotes", "vnm", "ovswitch_vxlan_unicast")


def rule(xml: str) -> SecurityGroupRule:
    return SecurityGroupRule.from_xml(etree.fromstring(xml), "SECURITY_GROUP_RULE[0]")


def test_port_masks_cover_exactly_the_range():
    rng = random.Random(4)
    for _ in range(500):
        lo = rng.randint(1, 65535)
        hi = rng.randint(lo, 65535)
        covered = set()
        for value, mask in port_masks(lo, hi):
            assert value & ~mask & 0xFFFF == 0
            covered.update(range(value, value + ((~mask & 0xFFFF) + 1)))
        assert covered == set(range(lo, hi + 1))


def test_tcp_rule_matches_both_families_on_destination_port():
    assert rule_matches(rule(sg_rule_xml(0, "TCP", "inbound", range="22")), "r") == [
        "tcp,tp_dst=22", "tcp6,tp_dst=22"]


def test_address_range_becomes_networks_on_the_remote_side():
    inbound = rule(sg_rule_xml(0, "UDP", "inbound", ip="10.0.0.5", size=4, range="53"))
    assert rule_matches(inbound, "r") == ["udp,nw_src=10.0.0.5/32,tp_dst=53",
                                          "udp,nw_src=10.0.0.6/31,tp_dst=53",
                                          "udp,nw_src=10.0.0.8/32,tp_dst=53"]
    outbound = rule(sg_rule_xml(0, "ALL", "outbound", ip="192.168.0.0", size=256))
    assert rule_matches(outbound, "r") == ["ip,nw_dst=192.168.0.0/24"]


def test_icmp_type_and_ipsec():
    assert rule_matches(rule(sg_rule_xml(0, "ICMP", "inbound", icmp_type=8)), "r") == [
        "icmp,icmp_type=8"]
    assert rule_matches(rule(sg_rule_xml(0, "IPSEC", "inbound")), "r") == [
        "ip,nw_proto=50", "ip,nw_proto=51", "ipv6,nw_proto=50", "ipv6,nw_proto=51"]


def test_filter_is_a_whitelist_per_direction():
    assert compile_filter(()) == OPEN
    only_ssh = compile_filter([rule(sg_rule_xml(0, "TCP", "inbound", range="22"))])
    assert only_ssh.inbound == ("tcp,tp_dst=22", "tcp6,tp_dst=22")
    assert only_ssh.outbound == ()  # closed: only replies leave
    default = compile_filter([rule(sg_rule_xml(0, "ALL", "inbound")),
                              rule(sg_rule_xml(0, "ALL", "outbound"))])
    assert default.open  # OpenNebula's default group: no conntrack at all


def test_range_running_past_the_address_space_is_refused():
    with pytest.raises(InputError, match="r/SIZE"):
        rule_matches(rule(sg_rule_xml(0, "ALL", "inbound", ip="255.255.255.250", size=10)), "r")


def random_bridge(rng):
    ofports = iter(rng.sample(range(1, 500), 40))
    tunnels = [pipeline.TunnelPortState(next(ofports), f"vx{i}") for i in range(rng.randint(0, 8))]
    vms = [pipeline.VmPort(next(ofports), f"one-{i}-0", f"02:00:00:00:00:{i:02x}",
                           rng.choice([100, 200, 16777215]), OPEN) for i in range(rng.randint(0, 12))]
    return tunnels, vms


def all_flows(tunnels, vms):
    flows = pipeline.shared_flows(vms, tunnels, 300)
    for t in tunnels:
        flows += pipeline.tunnel_flows(t)
    for p in vms:
        flows += pipeline.port_flows(p)
    return flows


def test_no_flow_sends_a_frame_from_the_mesh_back_into_it():
    rng = random.Random(7)
    for _ in range(200):
        tunnels, vms = random_bridge(rng)
        tunnel_ports = {t.ofport for t in tunnels}
        for flow in all_flows(tunnels, vms):
            outputs = {int(p) for p in re.findall(r"output:(\d+)", flow.actions)}
            if outputs & tunnel_ports:
                assert "reg0=0" in flow.match.split(","), flow  # local frames only
            if flow.match.startswith("in_port=") and int(flow.match.split(",")[0][8:]) in tunnel_ports:
                assert "load:1->NXM_NX_REG0[]" in flow.actions or flow.actions == "drop"


def test_flooding_stays_within_the_vni_and_reaches_each_peer_once():
    rng = random.Random(9)
    for _ in range(200):
        tunnels, vms = random_bridge(rng)
        vni_of = {p.ofport: p.vni for p in vms}
        for flow in pipeline.shared_flows(vms, tunnels, 300):
            m = re.search(r"tun_id=(\d+)", flow.match)
            if not m:
                continue
            local = [int(p) for p in re.findall(r"load:(\d+)->NXM_NX_REG1", flow.actions)]
            assert all(vni_of[p] == int(m.group(1)) for p in local)
            outputs = re.findall(r"output:(\d+)", flow.actions)
            assert len(outputs) == len(set(outputs))
            if "reg0=0" in flow.match:
                assert {int(o) for o in outputs} == {t.ofport for t in tunnels}


def test_port_plan_adds_and_removes_in_one_command_list():
    want = {tunnel_name("10.0.0.2"): TunnelSpec("one-2", "10.0.0.2", 4789, 1000)}
    have = {tunnel_name("10.0.0.3"): TunnelSpec("one-3", "10.0.0.3", 4789, 1000)}
    commands = port_commands("br-mesh", diff("ports", want, have))
    assert commands[0] == ["--if-exists", "del-port", "br-mesh", "vx0a000003"]
    assert commands[1] == ["--may-exist", "add-port", "br-mesh", "vx0a000002"]
    assert "options:key=flow" in commands[2] and "options:remote_ip=10.0.0.2" in commands[2]
    assert "external_ids:onemetal-owner=onemetal" in commands[2]
    assert port_commands("br-mesh", diff("ports", want, want)) == []


def test_vm_port_commands_set_the_mtu_and_record_ownership():
    spec = VmPortSpec(vm_id=42, nic_id=1, mac="02:00:00:00:00:01", vni=100, mtu=1450)
    [add, settings] = port_commands("br-mesh", diff("ports", {"one-42-1": spec}, {}))
    assert add == ["--may-exist", "add-port", "br-mesh", "one-42-1"]
    assert "mtu_request=1450" in settings and "external_ids:onemetal-vni=100" in settings


def test_datapath_comes_from_the_configuration():
    absent = BridgeState(name="br-mesh", exists=False)
    assert "datapath_type=system" in bridge_commands(absent, NetConfig())[1]
    assert "datapath_type=netdev" in bridge_commands(absent, NetConfig(datapath="netdev"))[1]
    with pytest.raises(ConfigError, match="net.datapath"):
        bridge_commands(absent, NetConfig(datapath="dpdk"))
    other = BridgeState(name="br-mesh", exists=True, datapath_type="netdev")
    with pytest.raises(ConfigError, match="net.datapath"):
        bridge_commands(other, NetConfig(datapath="system"))


def nic(**options) -> Nic:
    sample = SampleNic(0, "192.168.0.2", "02:00:c0:a8:00:02", **options)
    return Nic.from_xml(etree.fromstring(nic_xml(sample)), 0)


def test_mtu_is_the_overlay_maximum_unless_the_vnet_sets_less():
    assert (overlay_mtu(1500), overlay_mtu(9001)) == (1450, 8951)
    assert nic_mtu(nic(mtu=None), 1450, "NIC") == 1450
    assert nic_mtu(nic(mtu=1400), 1450, "NIC") == 1400
    with pytest.raises(InputError, match="NIC/MTU: 1500 is above the overlay maximum 1450"):
        nic_mtu(nic(mtu=1500), 1450, "NIC")


def test_peers_are_every_other_host_and_addresses_are_unique():
    hosts = host_pool(etree.fromstring(host_pool_xml([(0, "a", "10.0.0.1"), (1, "b", "10.0.0.2")])))
    mesh = peers_from_pool(hosts, "a")
    assert mesh.local.name == "a" and [p.name for p in mesh.peers] == ["b"]
    clash = host_pool(etree.fromstring(host_pool_xml([(0, "a", "10.0.0.1"), (1, "b", "10.0.0.1")])))
    with pytest.raises(InputError, match="share one TUNNEL_IP"):
        peers_from_pool(clash, "a")


def test_stored_peer_list_keeps_the_underlay_mtu_where_an_older_core_ignores_it():
    hosts = host_pool(etree.fromstring(host_pool_xml([(0, "a", "10.0.0.1"), (1, "b", "10.0.0.2")])))
    pool = peers_from_pool(hosts, "a")
    recorded = Mesh(pool.local, pool.peers, 9001)
    text = peers.render(recorded)
    data = json.loads(text)
    # Beside local and peers, never inside them: an older core builds Peer(**local).
    assert set(data) == {"local", "peers", "underlay_mtu"}
    assert set(data["local"]) == {"name", "tunnel_ip", "host_id"}
    assert peers.parse(text) == recorded
    legacy = peers.render(pool)  # what a host stored before the MTU was recorded
    assert "underlay_mtu" not in json.loads(legacy) and peers.parse(legacy).underlay_mtu is None
    assert peers.parse(None) == Mesh(None, ())
    assert mtu_lines(None, recorded) == [] and mtu_lines(9001, recorded) == []
    assert mtu_lines(1500, recorded) == [
        "~ underlay MTU: 1500 -> 9001 (VM ports follow at their next action)"]


def test_actions_take_the_configured_then_the_recorded_underlay_mtu():
    # 192.0.2.1 (TEST-NET-1) is on no interface here: learning it would fail.
    assert underlay_mtu(Runner(), 0, "192.0.2.1", 1500) == 1500
    assert underlay_mtu(Runner(), 9001, "192.0.2.1", 1500) == 9001
    with pytest.raises(InputError, match="TUNNEL_IP: no interface holds .* 192.0.2.1"):
        underlay_mtu(Runner(), 0, "192.0.2.1", None)
    with pytest.raises(InputError, match="^mesh: this host has no tunnel address yet"):
        underlay_mtu(Runner(), 0, None, 1500)
    with pytest.raises(ConfigError, match="net.underlay_mtu"):
        underlay_mtu(Runner(), 100, "192.0.2.1", 1500)


def test_members_resolve_missing_tunnel_addresses_and_skip_offline_hosts():
    hosts = [Host(0, "a", 2, 0, None, None, {"TUNNEL_IP": "10.0.0.1"}),
             Host(1, "b", 4, 0, None, None, {}),   # DISABLED: its VMs still run
             Host(2, "c", 8, 0, None, None, {})]   # OFFLINE
    got = members(hosts, resolver=lambda name: {"b": "10.0.0.2"}[name])
    assert [(h.name, h.template["TUNNEL_IP"]) for h in got] == [("a", "10.0.0.1"), ("b", "10.0.0.2")]


def test_host_list_file_is_checked_line_by_line():
    hosts = parse_host_list(["# bootstrap", "one-0 10.0.0.1", "one-1"], "hosts.txt")
    assert [(h.name, dict(h.template)) for h in hosts] == [("one-0", {"TUNNEL_IP": "10.0.0.1"}),
                                                          ("one-1", {})]
    with pytest.raises(InputError, match="hosts.txt:1"):
        parse_host_list(["one-0 10.0.0.300"], "hosts.txt")
    with pytest.raises(InputError, match="hosts.txt:1"):
        parse_host_list(["one;0"], "hosts.txt")


VNET = ("<VNET><ID>5</ID><NAME>private</NAME><BRIDGE>{bridge}</BRIDGE><VN_MAD>"
        "ovswitch_vxlan_unicast</VN_MAD><VLAN_ID>{vlan}</VLAN_ID><VLAN_ID_AUTOMATIC>0"
        "</VLAN_ID_AUTOMATIC><TEMPLATE>{template}</TEMPLATE></VNET>")


def vnet(bridge="br-mesh", vlan="100", template=""):
    return etree.fromstring(VNET.format(bridge=bridge, vlan=vlan, template=template))


def test_vnet_create_adds_the_overlay_mtu_and_refuses_what_the_mesh_cannot_carry():
    net = NetConfig(underlay_mtu=9001)
    assert check_vnet(vnet(), net) == ['MTU="8951"', 'GUEST_MTU="8951"']
    assert check_vnet(vnet(template="<MTU>1400</MTU><GUEST_MTU>1400</GUEST_MTU>"), net) == []
    assert check_vnet(vnet(), NetConfig()) == []  # underlay known only on the hosts
    for bad, field in ((vnet(bridge="onebr5"), "VNET/BRIDGE"), (vnet(vlan="0"), "VNET/VLAN_ID"),
                       (vnet(vlan="16777216"), "VNET/VLAN_ID"),
                       (vnet(template="<MTU>9000</MTU>"), "VNET/MTU")):
        with pytest.raises(InputError, match=field):
            check_vnet(bad, net)


def test_vnet_create_runs_as_oned_runs_it(tmp_path):
    conf = tmp_path / "onemetal.conf"
    conf.write_text("[net]\nunderlay_mtu = 1500\n")
    env = {"ONEMETAL_CONF": str(conf), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([f"{REPO_REMOTES}/vnet_create", "5"], input=b64(VNET.format(
        bridge="br-mesh", vlan="100", template="")), capture_output=True, text=True, env=env,
        timeout=30)
    assert (ok.returncode, ok.stdout) == (0, 'MTU="1450"\nGUEST_MTU="1450"\n')
    bad = subprocess.run([f"{REPO_REMOTES}/vnet_create", "5"], input=b64(VNET.format(
        bridge="onebr5", vlan="100", template="")), capture_output=True, text=True, env=env,
        timeout=30)
    assert bad.returncode == 1 and "VNET/BRIDGE" in bad.stderr and bad.stdout == ""
    gone = subprocess.run([f"{REPO_REMOTES}/vnet_delete", "5"], input=b64(VNET.format(
        bridge="br-mesh", vlan="100", template="")), capture_output=True, text=True, env=env,
        timeout=30)
    assert (gone.returncode, gone.stdout) == (0, "")
