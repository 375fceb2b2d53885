"""The lab's oned double (lab/oned_vmm, oned_tm, oned_ds) against onemetal installed in a
frontend host with its own CLI, remotes synced to two hosts, and the mesh between them."""

from __future__ import annotations

import os
import time
from typing import Iterator

import pytest

from onemetal import install
from onemetal.lab import Lab, drive, frontend_host, libvirt
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.oned_ds import ds_action
from onemetal.lab.oned_tm import transfer
from onemetal.lab.oned_vmm import ActionResult, VmmMad
from onemetal.lab.registry import alive
from onemetal.lab.samples import VN_MAD, SampleNic, vnm_vm_xml
from onemetal.lab.vm import LabVM

HOSTS = ["one-0", "one-1"]
BRIDGE = drive.BRIDGE
CONF = HOST_CONF + '[storage]\nprofile = "none"\n'
DEPLOYMENT = os.path.join(os.path.dirname(__file__), "data", "vmm", "deployment.0")
DS_XML = "<DATASTORE><ID>0</ID><NAME>system</NAME><TM_MAD>onemetal</TM_MAD></DATASTORE>"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    begin = time.monotonic()
    with Lab(hosts=2, frontend_host=True) as lab:
        frontend_host.install(lab, install.source_root())
        for host in [frontend_host.frontend(lab), *lab.hosts]:
            host.write_conf(CONF)
        frontend_host.sync_remotes(lab)
        drive.mesh(lab, "sync", HOSTS)
        print(f"\nlab, install, sync and mesh: {time.monotonic() - begin:.1f} s")
        yield lab


def nic(vm_id: int) -> SampleNic:
    return SampleNic(0, f"192.168.5.{vm_id}", f"02:00:c0:a8:05:{vm_id:02x}")


def vm_dir(vm_id: int) -> str:
    return f"/var/lib/one/datastores/0/{vm_id}"


def deploy_ns(lab: Lab, vm_id: int, host: str) -> tuple[ActionResult, list[LabVM]]:
    """A namespace VM deployed through the MAD's steps; the lab plugs it as libvirt would."""
    xml = vnm_vm_xml(vm_id, host, [nic(vm_id)])
    vms: list[LabVM] = []

    def plug() -> None:
        vms.append(lab.add_vm(host, f"vm{vm_id}", BRIDGE, f"{nic(vm_id).ip}/24",
                              mac=nic(vm_id).mac, port=f"one-{vm_id}-0"))

    result = VmmMad(lab).deploy(vm_id, host, vnm_payload=xml, vm_xml=xml, ds_xml=DS_XML,
                                vm_dir=vm_dir(vm_id), plug=plug)
    for vm in vms:
        lab.follow_port_mtu(vm)
    return result, vms


def ports(lab: Lab, host: str) -> list[str]:
    return lab.host(host).vsctl("list-ports", BRIDGE).split()


def names(result: ActionResult) -> list[str]:
    return [name for name, _ in result.steps]


@pytest.fixture(scope="module")
def pair(lab) -> tuple[LabVM, LabVM]:
    begin = time.monotonic()
    first, [a] = deploy_ns(lab, 11, "one-0")
    print(f"\nnamespace VM deploy through the stream: {time.monotonic() - begin:.2f} s")
    second, [b] = deploy_ns(lab, 12, "one-1")
    assert first.ok and second.ok, (first.message, second.message)
    assert (first.info, names(first)) == ("one-11", ["vnm pre", "mkdir", "vm.xml", "ds.xml",
                                                     "plug", "vnm post"])
    return a, b


def test_deploy_writes_the_vm_dir_and_the_vm_reaches_the_other_host_at_mtu_1450(lab, pair):
    a, b = pair
    with open(lab.host("one-0").path(f"{vm_dir(11)}/vm.xml"), encoding="utf-8") as f:
        assert f.read() == vnm_vm_xml(11, "one-0", [nic(11)]) + "\n"  # the heredoc's newline
    with open(lab.host("one-0").path(f"{vm_dir(11)}/ds.xml"), encoding="utf-8") as f:
        assert f.read() == DS_XML + "\n"
    assert lab.host("one-0").vsctl("get", "interface", "one-11-0", "mtu") == "1450"
    assert a.ping(b.ip, count=2)


def test_a_failing_vmm_deploy_is_followed_by_vnm_clean_and_carries_oneds_message(lab):
    xml = vnm_vm_xml(13, "one-0", [nic(13)])
    result = VmmMad(lab).deploy(13, "one-0", vnm_payload=xml, vm_xml=xml, ds_xml=DS_XML,
                                vm_dir=vm_dir(13), deployment="<domain><name>one-13</name>")
    assert not result.ok
    assert names(result) == ["vnm pre", "mkdir", "vm.xml", "ds.xml", "vmm deploy", "vnm clean"]
    assert dict(result.steps)["vnm clean"].code == 0
    deploy = dict(result.steps)["vmm deploy"]
    assert "not well-formed" in result.message, deploy.stderr
    assert result.message.endswith(f"ExitCode: {deploy.code}")
    assert "one-13-0" not in ports(lab, "one-0")
    print(f"\noned's ERROR: {result.message}")


def test_migrate_runs_the_mads_steps_in_order_and_the_vm_stays_reachable(lab, pair):
    a, b = pair
    _, [watcher] = deploy_ns(lab, 14, "one-0")
    xml = vnm_vm_xml(11, "one-1", [nic(11)])
    moved: list[LabVM] = []
    begin = time.monotonic()
    result = VmmMad(lab).migrate(
        11, "one-0", "one-1", "one-11", vnm_payload=xml, vm_xml=xml, system_dir=vm_dir(11),
        ds_id=0, action_data=f"<VMM_DRIVER_ACTION_DATA>{xml}</VMM_DRIVER_ACTION_DATA>",
        move=lambda: moved.append(lab.move_vm(a, "one-1", BRIDGE)))
    print(f"\nmigrate through two streams and the TM: {time.monotonic() - begin:.2f} s")
    assert result.ok, result.message
    assert names(result) == ["tm premigrate", "vnm pre", "move", "vnm clean", "vnm post",
                             "tm postmigrate"]
    assert all(step.code == 0 for _, step in result.steps), result.steps
    assert "one-11-0" not in ports(lab, "one-0") and "one-11-0" in ports(lab, "one-1")
    [after] = moved
    after.set_mtu(1450)
    assert after.ping(watcher.ip, count=3)  # the guest speaks first, as QEMU announces itself
    assert watcher.ping(after.ip, count=2)


def test_cancel_unplugs_and_vnm_clean_removes_the_port(lab, pair):
    _, b = pair
    host = lab.host("one-1")
    xml = vnm_vm_xml(12, "one-1", [nic(12)])
    result = VmmMad(lab).cancel(12, "one-1", "one-12", vnm_payload=xml, action_data="",
                                unplug=lambda: host.run(["ip", "link", "del", b.port]))
    assert result.ok, result.message
    assert names(result) == ["unplug", "vnm clean"]
    assert "one-12-0" not in ports(lab, "one-1")


def test_a_transfer_stops_at_its_first_failing_line_and_replies_failure(lab):
    text = ("# a comment, then an empty line\n\n"
            f"PREMIGRATE onemetal one-0 one-1 {vm_dir(20)} 20 0\n"
            "MKIMAGE onemetal\n"
            f"POSTMIGRATE onemetal one-0 one-1 {vm_dir(20)} 20 0\n")
    result = transfer(lab, 20, text)
    assert not result.ok
    assert [line.split()[0] for line, _ in result.lines] == ["PREMIGRATE", "MKIMAGE"]
    assert result.lines[0][1].returncode == 0
    assert result.reply.startswith("TRANSFER FAILURE 20 ") and len(result.reply) > 21
    print(f"\n{result.reply}")
    ok = transfer(lab, 21, f"PREMIGRATE onemetal one-0 one-1 {vm_dir(21)} 21 0\n")
    assert (ok.ok, ok.reply) == (True, "TRANSFER SUCCESS 21 -")
    missing = transfer(lab, 22, "CLONE nosuch a b\n")
    assert missing.reply == "TRANSFER FAILURE 22 Transfer Driver 'nosuch' not available"


def ds_doc(ds_id: int, extra: str) -> str:
    return (f"<DS_DRIVER_ACTION_DATA><DATASTORE><ID>{ds_id}</ID>{extra}"
            f"<BASE_PATH>/var/lib/one/datastores/{ds_id}</BASE_PATH><TEMPLATE/></DATASTORE>"
            "</DS_DRIVER_ACTION_DATA>")


@pytest.mark.parametrize("kind, extra", [
    ("image", "<DS_MAD>onemetal</DS_MAD>"),
    ("system", "<DS_MAD>-</DS_MAD><TYPE>1</TYPE><TM_MAD>onemetal</TM_MAD>")])
def test_a_ds_monitor_with_its_base64_payload_prints_used_mb(lab, kind, extra):
    ds_id = 100 if kind == "image" else 0
    result = ds_action(lab, "monitor", ds_id, ds_doc(ds_id, extra))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("USED_MB="), result.stdout
    assert result.argv[-2].endswith("/tm/onemetal/monitor" if kind == "system"
                                    else "/datastore/onemetal/monitor")


@pytest.mark.parametrize("extra, message", [
    ("", "Datastore driver '' not available"),
    ("<DS_MAD>nosuch</DS_MAD>", "Datastore driver 'nosuch' not available"),
    ("<DS_MAD>-</DS_MAD><TYPE>1</TYPE><TM_MAD>nosuch</TM_MAD>",
     "System datastore driver 'nosuch' not available")])
def test_a_ds_action_for_a_driver_the_mad_lacks_is_refused_unrun(lab, extra, message):
    result = ds_action(lab, "monitor", 100, ds_doc(100, extra))
    assert (result.returncode, result.stderr) == (-1, message + "\n")


def test_a_failing_move_runs_failmigrate_and_stops(lab):
    xml = vnm_vm_xml(15, "one-1", [nic(15)])

    def move() -> None:
        raise RuntimeError("the destination refused the guest")

    result = VmmMad(lab).migrate(15, "one-0", "one-1", "one-15", vnm_payload=xml, vm_xml=xml,
                                 system_dir=vm_dir(15), ds_id=0, action_data="", move=move)
    assert not result.ok
    assert names(result) == ["tm premigrate", "vnm pre", "move", "tm failmigrate"]
    assert "the destination refused the guest" in result.message


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def test_a_step_past_its_deadline_kills_the_whole_ssh_session(lab):
    stream = VmmMad(lab).stream("one-0")
    try:
        assert stream.run_command(["/bin/true"]).code == 0
        session = [stream._proc.pid, *_descendants(stream._proc.pid)]
        commands = [open(f"/proc/{pid}/comm", encoding="ascii").read().strip() for pid in session]
        assert "ssh" in commands, commands
        begin = time.monotonic()
        result = stream.run_command(["/bin/sleep", "30"], timeout=1.0)
        print(f"\nremote step with a 1 s deadline returned after {time.monotonic() - begin:.2f} s"
              f" ({len(session)} local processes in the session)")
        assert result.stderr.endswith("Timeout Error") and not stream.alive
        assert [pid for pid in session if alive(pid)] == []
    finally:
        stream.close()


def test_a_tcg_guest_deploys_and_cancels_through_the_stream(lab):
    """The real thing: remotes/vmm/onemetal/deploy with the deployment file on stdin, its
    domain's UUID as the deploy id given to post; then cancel and clean."""
    host = lab.host("one-1")
    daemons = libvirt.start(host, lab.record)  # type: ignore[arg-type]
    try:
        with open(DEPLOYMENT, encoding="utf-8") as f:
            domain = f.read()
        xml = vnm_vm_xml(7, "one-1", [SampleNic(0, "10.0.7.1", "02:00:0a:00:07:01", mtu=None)])
        data = (f"<VMM_DRIVER_ACTION_DATA><HOST>one-1</HOST><DEPLOY_ID>one-7</DEPLOY_ID>{xml}"
                f"{DS_XML}</VMM_DRIVER_ACTION_DATA>")
        mad = VmmMad(lab)
        begin = time.monotonic()
        result = mad.deploy(7, "one-1", vnm_payload=xml, vm_xml=xml, ds_xml=DS_XML,
                            vm_dir=vm_dir(7), deployment=domain, action_data=data)
        print(f"\nlibvirt answered in {daemons.started_in:.2f} s; "
              f"TCG guest deploy through the stream: {time.monotonic() - begin:.2f} s")
        assert result.ok, result.message
        assert names(result) == ["vnm pre", "mkdir", "vm.xml", "ds.xml", "vmm deploy", "vnm post"]
        assert result.info == daemons.virsh("domuuid", "one-7").strip()
        assert daemons.virsh("domstate", "one-7").strip() == "running"
        assert host.vsctl("get", "interface", "one-7-0", "mtu") == "1450"
        gone = mad.cancel(7, "one-1", result.info, vnm_payload=xml, action_data=data)
        assert gone.ok, gone.message
        assert names(gone) == ["vmm cancel", "vnm clean"]
        assert daemons.virsh("list", "--all", "--name").split() == []
        assert "one-7-0" not in ports(lab, "one-1")
    finally:
        daemons.stop()


def test_a_failing_tm_context_ends_the_deploy_before_the_network(lab):
    xml = vnm_vm_xml(16, "one-0", [nic(16)])
    result = VmmMad(lab).deploy(16, "one-0", vnm_payload=xml, vm_xml=xml, ds_xml=DS_XML,
                                vm_dir=vm_dir(16), tm_command="CONTEXT onemetal", plug=lambda: None)
    assert not result.ok
    assert names(result) == ["tm context"]
    assert "tm-context" in result.message and "ExitCode" not in result.message, result.message


def test_a_failing_vnm_step_names_its_driver_in_the_reply(lab):
    """one_vnm.rb prefixes a network step's info with its VN_MAD; the deploy stops at pre."""
    result = VmmMad(lab).deploy(17, "one-0", vnm_payload="<VM><ID>17</ID>", vm_xml="<VM/>",
                                ds_xml=DS_XML, vm_dir=vm_dir(17), plug=lambda: None)
    assert not result.ok
    assert names(result) == ["vnm pre"]
    assert result.message.startswith(f"{VN_MAD}: ") and len(result.message) > len(VN_MAD) + 2
    print(f"\nthe reply's info: {result.message}")


def test_a_transfer_action_with_a_suffix_falls_back_at_its_last_dot(lab):
    args = f"onemetal one-0 one-1 {vm_dir(23)} 23 0"
    moved = transfer(lab, 23, f"PREMIGRATE.ssh {args}\n")
    tm = f"{frontend_host.REMOTES}/tm/onemetal"
    assert moved.ok, moved.reply
    assert f"{tm}/premigrate" in moved.lines[0][1].argv, moved.lines[0][1].argv
    refused = transfer(lab, 23, f"PREMIGRATE.x.y {args}\n")
    assert refused.reply == (f"TRANSFER FAILURE 23 Driver path '{tm}/premigrate.x.y' nor "
                             f"'{tm}/premigrate.x' exists")
