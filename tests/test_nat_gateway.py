"""The NAT gateway end to end: onenat on the frontend, the API stand-in, nft and conntrack on one-0.

Reference topology: one-0 is the gateway (10.0.0.41 on its "ENI" ens5, EIP private
addresses 10.0.0.42/43 added by onenat), VMs on one-1 and one-2 in vnet 0
(VNI 100, 192.168.0.0/24, gateway 192.168.0.1 on one-0), and an "internet" client
10.0.0.100 on the ENI's link.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import installed_lab
from lxml import etree

from onemetal.lab import drive, frontend, traffic
from onemetal.lab.samples import SampleNic, b64

HOSTS = ["one-0", "one-1", "one-2"]
def user_template(api_dir, vm_id: int) -> dict[str, str]:
    root = etree.parse(str(api_dir / f"vm-{vm_id}.xml")).getroot()
    return {e.tag: e.text for e in root.find("USER_TEMPLATE")}


def nic(vm_id: int) -> SampleNic:
    return SampleNic(0, f"192.168.0.{vm_id}", f"02:00:c0:a8:00:{vm_id:02x}", vlan_id=100, mtu=None)


@pytest.fixture(scope="module")
def nat(tmp_path_factory):
    api_dir = tmp_path_factory.mktemp("api")
    with installed_lab(3, mesh=HOSTS) as lab:
        client = lab.add_uplink("one-0", "ens5", "10.0.0.41/24", "10.0.0.100/24")
        fe = frontend.start(lab, str(api_dir), nat_gateway="one-0", nat_interface="ens5")
        vms = {}
        for vm_id, host, net in ((5, "one-1", 0), (6, "one-2", 0), (7, "one-1", 0), (8, "one-2", 9)):
            [vms[vm_id]] = drive.deploy(lab, host, vm_id, [nic(vm_id)])
            vms[vm_id].route_via("192.168.0.1")
            fe.add_vm(vm_id, nic(vm_id), net)
            traffic.listen(vms[vm_id], 5000 + vm_id, lab.workdir)
        traffic.listen(client, 7000, lab.workdir)
        fe.onenat("vnet", "add", "0", "--subnet", "192.168.0.0/24", "--gateway", "192.168.0.1",
                  "--snat", "10.0.0.41", "--vni", "100")
        fe.onenat("pool", "create", "aws", "--addresses", "3.3.3.2=10.0.0.42,3.3.3.3=10.0.0.43")
        fe.onenat("map", "5", "--eip", "3.3.3.2")
        yield lab, client, vms, fe.onenat, api_dir


def test_client_reaches_the_mapped_vm_through_its_eip(nat):
    lab, client, vms, onenat, _ = nat
    assert traffic.tcp_transfer(client, "10.0.0.42", 5005)     # VM 5 listens on 5005
    assert not traffic.tcp_transfer(client, "10.0.0.42", 5006, timeout=1)  # VM 6's port: not VM 5


def test_mapped_vm_leaves_from_its_eip_and_others_from_the_snat_address(nat):
    lab, client, vms, onenat, _ = nat
    assert traffic.seen_from(vms[5], "10.0.0.100", 7000) == "10.0.0.42"
    assert traffic.seen_from(vms[7], "10.0.0.100", 7000) == "10.0.0.41"


def test_mapping_is_written_to_the_vm_user_template(nat):
    lab, client, vms, onenat, api_dir = nat
    assert user_template(api_dir, 5) == {"EIP": "yes", "EIP_ADDRESS": "3.3.3.2",
                                         "EIP_PRIVATE_IP": "10.0.0.42"}
    shown = json.loads(onenat("show", "5", "-j").stdout)
    assert shown == [{"eip": "3.3.3.2", "private_ip": "10.0.0.42", "vm_id": 5, "nic_id": 0,
                      "vm_ip": "192.168.0.5", "vnet_id": 0}]
    assert "<EIP>3.3.3.2</EIP>" in onenat("list", "-x").stdout


def test_unmap_cuts_the_open_flow_and_remap_sends_new_connections_to_the_new_vm(nat):
    lab, client, vms, onenat, api_dir = nat
    log = traffic.open_flow(client, "10.0.0.42", 5005, seconds=8, log_dir=lab.workdir)
    time.sleep(1.5)
    onenat("unmap", "5")
    deadline = time.monotonic() + 15
    while not open(log).read().strip():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert open(log).read().startswith("stopped"), open(log).read()
    assert user_template(api_dir, 5) == {"EIP": "yes"}  # the request stays, the address went
    onenat("map", "6", "--eip", "3.3.3.2")
    assert traffic.tcp_transfer(client, "10.0.0.42", 5006)
    assert not traffic.tcp_transfer(client, "10.0.0.42", 5005, timeout=1)
    assert traffic.seen_from(vms[6], "10.0.0.100", 7000) == "10.0.0.42"
    assert traffic.seen_from(vms[5], "10.0.0.100", 7000) == "10.0.0.41"


def test_flushed_table_is_restored_by_sync_and_plan_is_empty_after(nat):
    lab, client, vms, onenat, _ = nat
    lab.host("one-0").run(["nft", "delete", "table", "ip", "onemetal"])
    assert not traffic.tcp_transfer(client, "10.0.0.42", 5006, timeout=1)
    assert "+ table ip onemetal" in onenat("plan").stdout
    onenat("sync")
    assert traffic.tcp_transfer(client, "10.0.0.42", 5006)
    assert onenat("plan").stdout.strip() == ""
    assert "in step" in onenat("status").stdout


def test_flushed_dnat_chain_is_a_difference_that_sync_repairs(nat):
    lab, client, vms, onenat, _ = nat
    [mapping] = json.loads(onenat("list", "-j").stdout)
    address, port = mapping["private_ip"], 5000 + mapping["vm_id"]
    lab.host("one-0").run(["nft", "flush", "chain", "ip", "onemetal", "prerouting"])
    assert not traffic.tcp_transfer(client, address, port, timeout=1)
    plan = onenat("plan").stdout.splitlines()
    assert plan == ["nft: chain prerouting: rule 1 missing: "
                    "dnat ip to ip daddr . meta l4proto . th dport map @forwards",
                    "nft: chain prerouting: rule 2 missing: dnat ip to ip daddr map @eip_to_vm"]
    status = onenat("status", check=False)
    assert status.returncode == 1 and "gateway: 2 differences" in status.stdout
    onenat("sync")
    assert traffic.tcp_transfer(client, address, port)
    assert onenat("plan").stdout.strip() == ""


@pytest.mark.parametrize("args,field", [
    (["map", "7", "--eip", "3.3.3.99"], "eip: 3.3.3.99 is in no pool"),
    (["map", "7", "--eip", "3.3.3"], "eip: '3.3.3' is not an IPv4 address"),
    (["map", "77"], "one.vm.info: "),
    (["map", "8"], "nic: VM 8: no NIC on a NATed vnet"),
    (["forward", "add", "10.0.0.41:0/tcp", "192.168.0.7:80"], "port: 0 is out of range"),
    (["forward", "add", "10.0.0.41:70000/tcp", "192.168.0.7:80"], "port: 70000 is out of range"),
    (["forward", "add", "10.0.0.41:80/tcp", "192.168.0.7"], "target: '192.168.0.7' is not"),
    (["pool", "create", "bad", "--addresses", "3.3.3.9=10.0.0.300"], "addresses[0] (private IP)"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(nat, args, field):
    lab, client, vms, onenat, _ = nat
    before = [onenat(kind, "list", "-j").stdout for kind in ("vnet", "pool", "forward")]
    before.append(onenat("list", "-j").stdout)
    result = onenat(*args, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("onenat: ") and field in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    after = [onenat(kind, "list", "-j").stdout for kind in ("vnet", "pool", "forward")]
    assert after + [onenat("list", "-j").stdout] == before


def run_hook(lab, env, event, vm_id, api_dir, **overrides):
    hook = f"{lab.workdir}/frontend/var/lib/one/remotes/hooks/onemetal/nat-vm-{event}"
    xml = (api_dir / f"vm-{vm_id}.xml").read_text()
    return lab.frontend_cli({**env, **overrides}).run([hook], input=b64(xml), check=False)


def test_vm_hooks_map_at_running_keep_it_when_running_again_and_release_at_done(nat):
    lab, client, vms, onenat, api_dir = nat
    env = hook_env(api_dir)
    first = run_hook(lab, env, "running", 7, api_dir)
    assert first.returncode == 0, first.stderr
    [mapping] = json.loads(onenat("show", "7", "-j").stdout)
    assert user_template(api_dir, 7)["EIP_ADDRESS"] == mapping["eip"]
    assert traffic.tcp_transfer(client, mapping["private_ip"], 5007)
    again = run_hook(lab, env, "running", 7, api_dir)  # back from poweroff or a migration
    assert again.returncode == 0 and "already mapped" in again.stdout
    done = run_hook(lab, env, "done", 7, api_dir)
    assert done.returncode == 0 and f"EIP {mapping['eip']} released" in done.stdout
    assert "EIP_ADDRESS" not in user_template(api_dir, 7)
    assert not traffic.tcp_transfer(client, mapping["private_ip"], 5007, timeout=1)


def test_failed_hook_steps_are_repaired_by_the_next_sync(nat):
    lab, client, vms, onenat, api_dir = nat
    env = hook_env(api_dir)
    broken_conf = api_dir / "broken.conf"
    broken_conf.write_text((api_dir / "onemetal.conf").read_text().replace(
        'gateway = "one-0"', 'gateway = "one-9"'))
    # Neither the API nor the gateway can be reached while the hook runs.
    failed = run_hook(lab, env, "running", 7, api_dir, ONE_XMLRPC="http://127.0.0.1:9/RPC2",
                      ONEMETAL_CONF=str(broken_conf))
    assert failed.returncode == 1
    assert "VM template is not updated yet" in failed.stderr
    assert "gateway is not updated yet" in failed.stderr
    [mapping] = json.loads(onenat("show", "7", "-j").stdout)  # the intent was kept
    assert "EIP_ADDRESS" not in user_template(api_dir, 7)
    assert not traffic.tcp_transfer(client, mapping["private_ip"], 5007, timeout=1)
    onenat("sync")
    assert user_template(api_dir, 7)["EIP_ADDRESS"] == mapping["eip"]
    assert traffic.tcp_transfer(client, mapping["private_ip"], 5007)
    assert run_hook(lab, env, "done", 7, api_dir).returncode == 0


def hook_env(api_dir):
    return {"ONEMETAL_CONF": str(api_dir / "onemetal.conf"),
            "ONE_XMLRPC": "http://127.0.0.1:2633/RPC2", "ONE_AUTH": str(api_dir / "one_auth")}


def test_ten_concurrent_onenat_maps_of_one_eip_leave_exactly_one_mapping(nat):
    lab, client, vms, onenat, api_dir = nat
    for vm_id in range(20, 30):
        (api_dir / f"vm-{vm_id}.xml").write_text(frontend.VM_XML.format(
            id=vm_id, ip=f"192.168.0.{vm_id}", net=0, mac=f"02:00:c0:a8:00:{vm_id:02x}"))
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: onenat("map", str(i), "--eip", "3.3.3.3", check=False),
                                range(20, 30)))
    assert sorted(r.returncode for r in results) == [0] + [1] * 9
    refused = [r.stderr for r in results if r.returncode]
    assert all(e.startswith("onenat: eip: 3.3.3.3 is already mapped to VM ") for e in refused)
    holders = [m for m in json.loads(onenat("list", "-j").stdout) if m["eip"] == "3.3.3.3"]
    assert len(holders) == 1
    onenat("unmap", "--eip", "3.3.3.3")


def test_port_forward_reaches_the_vm_and_its_removal_cuts_the_open_flow(nat):
    lab, client, vms, onenat, _ = nat
    onenat("forward", "add", "10.0.0.41:8080/tcp", "192.168.0.7:5007")
    assert traffic.tcp_transfer(client, "10.0.0.41", 8080)
    log = traffic.open_flow(client, "10.0.0.41", 8080, seconds=8, log_dir=lab.workdir)
    time.sleep(1.5)
    onenat("forward", "delete", "10.0.0.41:8080/tcp")
    deadline = time.monotonic() + 15
    while not open(log).read().strip():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert open(log).read().startswith("stopped"), open(log).read()
    assert not traffic.tcp_transfer(client, "10.0.0.41", 8080, timeout=1)


def test_without_onemetals_sudoers_fragment_the_gateway_apply_fails_with_a_clear_sudo_line(nat):
    lab, client, vms, onenat, _ = nat
    gateway = lab.host("one-0")
    fragment = os.path.join(gateway.sudoers_dir, "onemetal")
    aside = os.path.join(gateway.workdir, "onemetal.sudoers")
    gateway.run(["ip", "addr", "del", "10.0.0.43/32", "dev", "ens5"])  # lost, as after a reboot
    os.rename(fragment, aside)  # a host with OpenNebula's node sudoers only
    try:
        failed = onenat("sync", check=False)
    finally:
        os.rename(aside, fragment)
    assert failed.returncode != 0
    assert ("sudo refused `ip addr add 10.0.0.43/32 dev ens5 label ens5:om` to oneadmin: this "
            "host's sudoers do not allow it without a password") in failed.stderr
    assert "Traceback" not in failed.stderr and "internal error" not in failed.stderr
    onenat("sync")
    assert "10.0.0.43/32" in gateway.run(["ip", "-4", "-o", "addr", "show", "dev", "ens5"]).stdout
