"""Remote scripts driven the way oned's MAD drives them: over SSH from the frontend, one bash
session, stdin through a heredoc, under the host's /usr/bin/python3 with Debian's packages."""

import json

import pytest

from onemetal.lab import samples
from onemetal.lab.oned import MAGIC_RC, Step, error_message_6_0, error_message_7x, ssh_stream
from onemetal.opennebula.protocol import ERROR_BEGIN, ERROR_END

VM_XML = samples.vnm_vm_xml(42, "one-1", [
    samples.SampleNic(0, "192.168.0.2", "02:00:c0:a8:00:02"),
    samples.SampleNic(1, "192.168.1.2", "02:00:c0:a8:01:02", vlan_id=200)])


def pool(lab):
    return samples.b64(samples.host_pool_xml([(i, h.name, h.address) for i, h in enumerate(lab.hosts)]))


def peers_state(lab, host):
    return lab.ssh(host).run(["cat", "/var/lib/onemetal/mesh/peers.json"], check=False).stdout


def test_remote_script_reads_base64_vm_on_stdin_and_prints_only_its_result(lab3):
    for host in lab3.hosts:
        [step] = ssh_stream(lab3.ssh(host.name),
                            [Step("onemetal/call", ("describe-vm", "ovswitch_vxlan_unicast"),
                                  samples.b64(VM_XML))])
        assert step.code == 0, step.stderr
        assert step.stderr == ""
        seen = json.loads(step.stdout)
        assert seen["id"] == 42 and seen["host"] == "one-1"
        assert [(n["nic_id"], n["vlan_id"], n["ip"]) for n in seen["nics"]] == [
            (0, 100, "192.168.0.2"), (1, 200, "192.168.1.2")]


def test_remote_runs_under_the_hosts_system_python(lab3):
    [step] = ssh_stream(lab3.ssh("one-0"), [Step("onemetal/call", ("describe-vm",), samples.b64(VM_XML))])
    assert step.code == 0
    which = lab3.ssh("one-0").run(["head", "-1", "/var/tmp/one/onemetal/call"]).stdout
    assert which.startswith("#!/usr/bin/python3")


def test_host_state_entry_stores_peers_once(lab3):
    ssh = lab3.ssh("one-2")
    first = ssh.run_entry("mesh-peers", ["one-2"], input=pool(lab3) + "\n")
    second = ssh.run_entry("mesh-peers", ["one-2"], input=pool(lab3) + "\n")
    assert (first.stdout.splitlines()[0], second.stdout.strip()) == ("PEERS=2 CHANGED=YES",
                                                                  "PEERS=2 CHANGED=NO")
    assert len(first.stdout.splitlines()) == 3  # the plan: one tunnel port per peer
    stored = json.loads(peers_state(lab3, "one-2").split("\n", 1)[1])
    assert [p["name"] for p in stored["peers"]] == ["one-0", "one-1"]
    assert stored["local"]["name"] == "one-2"


@pytest.mark.parametrize("payload,reason", [
    ("PEhPU1RfUE9PTD4=!!", "stdin: not valid base64"),
    (samples.b64("<HOST_POOL><HOST><ID>0</ID>"), "stdin: malformed XML"),
    (samples.b64("<HOST_POOL><HOST><ID>0</ID><NAME>one-1;reboot</NAME></HOST></HOST_POOL>"),
     "HOST[ID=0]/NAME"),
])
def test_bad_payload_gives_the_error_block_exit_1_and_no_change(lab3, payload, reason):
    ssh = lab3.ssh("one-1")
    ssh.run_entry("mesh-peers", ["one-1"], input=pool(lab3))
    before = peers_state(lab3, "one-1")
    [step] = ssh_stream(ssh, [Step("onemetal/call", ("mesh-peers", "one-1"), payload)])
    assert step.code == 1 and step.stdout == ""
    lines = step.stderr.splitlines()
    assert lines[1] == ERROR_BEGIN and lines[3] == ERROR_END and len(lines) == 4
    assert lines[0].startswith("ERROR: mesh-peers: ")
    assert reason in error_message_6_0(step.stderr)
    assert reason in error_message_7x(step.stderr)
    assert step.logs and step.logs[0][0] == "ERROR"
    assert peers_state(lab3, "one-1") == before


def test_missing_script_answers_the_magic_exit_code(lab3):
    [step] = ssh_stream(lab3.ssh("one-0"), [Step("vnm/nonexistent/pre", (), samples.b64(VM_XML))])
    assert step.code == MAGIC_RC


def test_a_failing_step_stops_the_action(lab3):
    steps = [Step("onemetal/call", ("describe-vm",), "bad base64!"),
             Step("onemetal/call", ("describe-vm",), samples.b64(VM_XML))]
    results = ssh_stream(lab3.ssh("one-0"), steps)
    assert [r.code for r in results] == [1]


def test_an_action_before_the_first_mesh_sync_fails_naming_it_and_changes_nothing(lab3):
    host = lab3.host("one-0")  # no mesh-peers has run there in this module
    assert "br-mesh" not in host.vsctl("list-br").split()
    [step] = ssh_stream(lab3.ssh("one-0"), [Step("vnm/ovswitch_vxlan_unicast/pre", (),
                                                 samples.b64(VM_XML))])
    assert step.code == 1 and step.stdout == ""
    assert error_message_6_0(step.stderr) == (
        "mesh: this host has no tunnel address yet: run `onemetal mesh sync` on the frontend, "
        "or set net.underlay_mtu in onemetal.conf")
    assert "br-mesh" not in host.vsctl("list-br").split()
