"""The network driver on real OVS: 5 lab hosts, the mesh built by `onemetal mesh sync`, VMs of two vnets."""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import installed_lab

from onemetal.lab import drive, frontend, traffic
from onemetal.lab.samples import SampleNic, vnm_vm_xml

MESH = ["one-0", "one-1", "one-2", "one-3"]


def nic(vm_id: int, vni: int, **options: object) -> SampleNic:
    return SampleNic(0, f"192.168.0.{vm_id}", f"02:00:c0:a8:00:{vm_id:02x}", vlan_id=vni,
                     **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lab():
    with installed_lab(5, mesh=MESH) as lab:
        yield lab


@pytest.fixture(scope="module")
def vms(lab):
    """VNI 100: VMs 11..14, VNI 200: VMs 21..24, one of each on every mesh host; one subnet for
    both, so only the VNI keeps them apart."""
    out = {}
    for index, host in enumerate(MESH):
        for vni, base in ((100, 10), (200, 20)):
            vm_id = base + index + 1
            [out[vm_id]] = drive.deploy(lab, host, vm_id, [nic(vm_id, vni)])
    return out


def config_columns(lab, host):
    """OVSDB as configured (no counters or status, which ovs-vswitchd rewrites on its own)."""
    out = lab.host(host).run(["ovs-vsctl", "--format=json", "--columns=_uuid,name,type,options,"
                              "external_ids,mtu_request,bfd,ofport", "list", "Interface"]).stdout
    rows = json.loads(out)["data"]
    return sorted(json.dumps(r) for r in rows)


def flow_cookies(lab, host):
    out = lab.host(host).run(["ovs-ofctl", "dump-flows", "br-mesh", "cookie=0x6f6d000000000000/"
                              "0xffff000000000000"]).stdout
    return sorted(part.split(",")[0] for part in out.split("cookie=")[1:])


def pairs(ids):
    return [(a, b) for a in ids for b in ids if a < b]


def test_same_vni_pairs_exchange_ping_and_tcp(lab, vms):
    for vm in vms.values():
        traffic.listen(vm, 5001, lab.workdir)
    same = pairs([11, 12, 13, 14]) + pairs([21, 22, 23, 24])
    with ThreadPoolExecutor(8) as pool:
        pings = list(pool.map(lambda p: vms[p[0]].ping(vms[p[1]].ip, count=2), same))
        transfers = list(pool.map(lambda p: traffic.tcp_transfer(vms[p[0]], vms[p[1]].ip, 5001),
                                  same))
    assert all(pings), [p for p, ok in zip(same, pings) if not ok]
    assert all(transfers), [p for p, ok in zip(same, transfers) if not ok]


def test_no_cross_vni_pair_reaches_the_other(lab, vms):
    cross = [(a, b) for a in (11, 12, 13, 14) for b in (21, 22, 23, 24)]
    with ThreadPoolExecutor(16) as pool:
        reached = list(pool.map(lambda p: vms[p[0]].ping(vms[p[1]].ip, count=1, timeout=1), cross))
    assert not any(reached), [p for p, ok in zip(cross, reached) if ok]
    # The same pairs within one vnet do reach each other (the check above can fail).
    assert vms[11].ping(vms[12].ip, count=1)


def test_vm_port_mtu_is_underlay_minus_50_and_df_1451_never_leaves(lab, vms):
    a, b = vms[11], vms[12]
    assert lab.host("one-0").vsctl("get", "interface", a.port, "mtu") == "1450"
    assert a.ping(b.ip, size=1450 - 28, dont_fragment=True)
    big = a.run(["ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", str(1451 - 28), b.ip],
                check=False)
    # Refused by the guest's own stack (its MTU is the port's): nothing went on the wire.
    assert big.returncode != 0 and "message too long, mtu=1450" in big.stdout + big.stderr


def test_pre_and_post_twice_leave_ovsdb_and_flows_unchanged(lab, vms):
    xml = vnm_vm_xml(11, "one-0", [nic(11, 100)])
    before = config_columns(lab, "one-0"), flow_cookies(lab, "one-0")
    for action, args in (("pre", []), ("post", ["deploy-11", "one-0"])) * 2:
        result = drive.check(drive.vnm(lab, "one-0", action, args, xml), action)
        assert result.logs == ()  # INFO is logged only for a change
    assert (config_columns(lab, "one-0"), flow_cookies(lab, "one-0")) == before


def test_host_join_and_leave_lose_no_packet_and_touch_nothing_else(lab, vms):
    a, b = vms[12], vms[13]  # on one-1 and one-2
    before = {h: config_columns(lab, h) for h in ("one-1", "one-2")}
    count = 0
    result = {}

    def pinger():
        # 0.05 s apart for the whole join + leave; a lost reply shows as packet loss.
        out = a.run(["ping", "-n", "-q", "-i", "0.05", "-W", "1", "-w", "12", b.ip],
                    check=False, timeout=30)
        result["out"] = out.stdout
    thread = threading.Thread(target=pinger)
    thread.start()
    time.sleep(1)
    joined = drive.mesh(lab, "sync", MESH + ["one-4"]).stdout
    [new] = drive.deploy(lab, "one-4", 15, [nic(15, 100)])
    reach = [new.ping(vms[i].ip, count=1) for i in (11, 12, 13, 14)]
    left = drive.mesh(lab, "sync", ["one-0", "one-1", "one-2", "one-4"]).stdout
    thread.join(timeout=40)
    assert " 0% packet loss" in result["out"], result["out"]
    assert all(reach), reach
    assert "one-1: PEERS=4 CHANGED=YES" in joined and "one-1: PEERS=3 CHANGED=YES" in left
    for host in ("one-1", "one-2"):
        after = config_columns(lab, host)
        # Only the tunnel to one-4 came and the one to one-3 went: every other row is the same.
        [came] = set(after) - set(before[host])
        [went] = set(before[host]) - set(after)
        assert '"vxac1fff0e"' in came and '"vxac1fff0d"' in went, host
    ports = lab.host("one-1").vsctl("list-ports", "br-mesh").split()
    assert "vxac1fff0e" in ports and "vxac1fff0d" not in ports
    drive.mesh(lab, "sync", MESH)  # back to the module's mesh


def test_mesh_plan_changes_nothing_and_a_sync_without_change_writes_nothing(lab, vms):
    before = {h: config_columns(lab, h) for h in MESH}
    planned = drive.mesh(lab, "plan", MESH + ["one-4"]).stdout
    assert "one-0: PEERS=4 CHANGED=YES" in planned and "+ vxac1fff0e: vxlan to one-4" in planned
    assert {h: config_columns(lab, h) for h in MESH} == before
    same = drive.mesh(lab, "sync", MESH).stdout
    assert same.count("CHANGED=NO") == 4, same
    assert {h: config_columns(lab, h) for h in MESH} == before


def test_unreachable_host_fails_the_sync_but_not_the_others(lab, vms):
    result = drive.mesh(lab, "sync", [*MESH, "ghost=172.31.255.99"], "--parallel", "5",
                        check=False)
    assert result.returncode == 1
    assert "ghost: FAILED" in result.stdout and result.stdout.count("CHANGED=YES") == 4
    drive.mesh(lab, "sync", MESH)


def probe(lab, host):
    """The host/system probe as the monitord client runs it: its stdout is template text."""
    out = lab.ssh(host).run(["/var/tmp/one/im/kvm-probes.d/host/system/onemetal_mesh"])
    assert out.returncode == 0
    return out.stdout


def test_health_probe_reports_each_peer_and_which_path_is_down(lab, vms):
    healthy = probe(lab, "one-0")
    assert 'ONEMETAL_MESH_STATUS="ok"' in healthy and 'ONEMETAL_MESH_PEERS_UP="3"' in healthy
    assert 'ONEMETAL_MESH_MTU="1450"' in healthy
    assert 'NAME="one-3",TUNNEL_IP="172.31.255.13",STATE="up"' in healthy
    # The provider drops VXLAN from one-0 to one-3 (the classic security group mistake);
    # ICMP between them still passes, so only a check on the tunnel itself sees it.
    lab.underlay.run(["nft", "-f", "-"], input=(
        "table bridge labfilter {\n chain forward {\n  type filter hook forward priority 0;\n"
        "  ip saddr 172.31.255.10 ip daddr 172.31.255.13 udp dport 4789 drop\n }\n}\n"))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            report = probe(lab, "one-0")
            if 'NAME="one-3",TUNNEL_IP="172.31.255.13",STATE="down"' in report:
                break
            time.sleep(0.5)
        assert 'ONEMETAL_MESH_STATUS="degraded"' in report, report
        assert 'ONEMETAL_MESH_PEERS_UP="2"' in report
        assert 'NAME="one-1",TUNNEL_IP="172.31.255.11",STATE="up"' in report
    finally:
        lab.underlay.run(["nft", "delete", "table", "bridge", "labfilter"])


POOL = """<HOST_POOL>{}</HOST_POOL>"""
HOST = ("<HOST><ID>{id}</ID><NAME>{name}</NAME><STATE>{state}</STATE><PREV_STATE>2</PREV_STATE>"
        "<IM_MAD>kvm</IM_MAD><VM_MAD>kvm</VM_MAD><CLUSTER_ID>0</CLUSTER_ID><CLUSTER>default</CLUSTER>"
        "<TEMPLATE><HYPERVISOR><![CDATA[kvm]]></HYPERVISOR>{tunnel}</TEMPLATE></HOST>")


def test_mesh_sync_reads_the_host_pool_through_the_api(lab, vms, tmp_path_factory):
    def host(i, state=2, tunnel=True):
        ip = f"<TUNNEL_IP><![CDATA[172.31.255.{10 + i}]]></TUNNEL_IP>" if tunnel else ""
        return HOST.format(id=i, name=f"one-{i}", state=state, tunnel=ip)
    # one-2 has no TUNNEL_IP (its name is resolved); one-4 is OFFLINE, so not a member.
    pool = POOL.format("".join([host(0), host(1), host(2, tunnel=False), host(3),
                                host(4, state=8)]))
    workdir = tmp_path_factory.mktemp("api")
    (workdir / "host_pool.xml").write_text(pool)
    env = frontend.start(lab, str(workdir)).env
    argv = [sys.executable, "-m", "onemetal.cli.onemetal", "mesh", "plan"]
    result = lab.frontend_cli(env).run(argv)
    assert sorted(result.stdout.split("\n")[:-1]) == [f"{h}: PEERS=3 CHANGED=NO" for h in MESH]
    # The HOST hook, as the hook manager runs it on the frontend (installed, its own interpreter).
    hook = f"{lab.workdir}/frontend/var/lib/one/remotes/hooks/onemetal/mesh-sync"
    ran = lab.frontend_cli(env).run([hook])
    assert sorted(ran.stdout.split("\n")[:-1]) == [f"{h}: PEERS=3 CHANGED=NO" for h in MESH]
    (workdir / "one_auth").write_text("oneadmin:wrong\n")
    refused = lab.frontend_cli(env).run(argv, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("onemetal: one.hostpool.info: ") and "authenticated" in refused.stderr
