"""shutdown, reboot, reset, save and restore of remotes/vmm/onemetal over SSH as oneadmin, on a
lab host with its own libvirtd and a disk-less TCG guest (no OS: it ignores ACPI)."""

from __future__ import annotations

import glob
import os
import time

import pytest
from lxml import etree
# the lab of test_vmm_lab: one-0 with its libvirtd, VM 7's directory and its vm.xml
from test_vmm_lab import CONF, DATA, DFILE, VM_DIR, VMM, node  # noqa: F401

from onemetal.errors import InputError
from onemetal.lab import Lab, libvirt
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.samples import SampleNic, vnm_vm_xml
from onemetal.run import Result
from onemetal.vmm.connection import Connection
from onemetal.vmm.lifecycle import deploy_id, is_active, wait_acpi
from onemetal.vmm.save import guest_mtus, relocate

DS = "/var/lib/one/datastores"
CHECKPOINT = f"{VM_DIR}/checkpoint"


def test_a_deploy_id_is_a_uuid_or_an_opennebula_name():
    assert deploy_id(["one-7"]) == "one-7"
    assert deploy_id(["x", "0b8e2b8a-5c0e-4d4b-9d0a-3f6f3c1b2a10"], 1).startswith("0b8e")
    for bad in ("", "one-7; reboot", "web-7", "../one-7"):
        with pytest.raises(InputError, match="deploy id"):
            deploy_id([bad])


def test_restore_moves_the_vms_paths_to_the_checkpoints_datastore_only():
    saved = ("<d><source file='/var/lib/one//datastores/100/7/disk.0'/>"
             "<source file='/var/lib/one/datastores/0/17/disk.0'/></d>")
    assert relocate(saved, DS, f"{DS}/0/7/checkpoint", "7") == (
        f"<d><source file='{DS}/0/7/disk.0'/><source file='{DS}/0/17/disk.0'/></d>")


def _saved(mtu: str) -> str:
    return (f"<domain><name>one-7</name><devices><interface type='bridge'><target dev='one-7-0'/>"
            f"{mtu}</interface><interface type='bridge'><target dev='vnet9'/></interface>"
            f"</devices></domain>")


def test_restore_keeps_a_saved_guest_mtu_up_to_the_enforced_one_and_refuses_more():
    assert guest_mtus(_saved("<mtu size='1400'/>"), {"one-7-0": 1450}) == {"one-7-0": 1400}
    for mtu in ("<mtu size='1500'/>", ""):
        with pytest.raises(InputError, match="checkpoint file: interface one-7-0: .* above the 1450"):
            guest_mtus(_saved(mtu), {"one-7-0": 1450})


def test_shutdown_returns_as_soon_as_the_guest_powers_off():
    # libvirt's test driver powers a domain off at once, as a guest that obeys ACPI
    conn = Connection("test:///default", 5.0)
    try:
        dom = conn.lookup("test")
        begin = time.monotonic()
        assert wait_acpi(conn, dom, "test", 10.0) is True
        assert time.monotonic() - begin < 5.0 and not is_active(conn, dom, "test")
    finally:
        conn.close()


def _run(lab: Lab, action: str, *args: str) -> Result:
    return lab.ssh("one-0").run([f"{VMM}/{action}", *args], input="", check=False)


def _deploy(lab: Lab, daemons: libvirt.Libvirt) -> str:
    """one-7 running (deployed by the driver unless it already runs); its UUID."""
    with open(DATA, encoding="utf-8") as f:
        result = lab.ssh("one-0").run([f"{VMM}/deploy", DFILE, "one-0", "7", "one-0"],
                                      input=f.read(), check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _domains(daemons: libvirt.Libvirt) -> list[str]:
    return daemons.virsh("list", "--all", "--name").split()


def _timed(lab: Lab, action: str, *args: str) -> tuple[Result, float]:
    begin = time.monotonic()
    result = _run(lab, action, *args)
    print(f"\n{action} over SSH: {time.monotonic() - begin:.2f} s")
    return result, time.monotonic() - begin


def test_shutdown_of_a_guest_ignoring_acpi_destroys_it_after_the_timeout(node) -> None:
    lab, daemons = node
    lab.host("one-0").write_conf(CONF + "[vmm]\nshutdown_timeout = 3.0\n")
    try:
        uuid = _deploy(lab, daemons)
        result, took = _timed(lab, "shutdown", uuid, "one-0", "7", "one-0")
        assert result.returncode == 0, result.stderr
        assert f"WARN: shutdown: {uuid}: no ACPI shutdown within 3 s" in result.stderr
        assert took >= 3.0  # it waited for ACPI first
        assert _domains(daemons) == [] and daemons.qemu_pids() == []
        again = _run(lab, "shutdown", uuid, "one-0", "7", "one-0")  # gone: success, as stock
        assert (again.returncode, again.stderr) == (0, "")
    finally:
        lab.host("one-0").write_conf(CONF)


def test_reboot_and_reset_keep_the_domain_and_fail_without_one(node) -> None:
    lab, daemons = node
    uuid = _deploy(lab, daemons)
    [qemu] = daemons.qemu_pids()
    for action in ("reboot", "reset"):
        result = _run(lab, action, uuid, "one-0", "7", "one-0")
        assert result.returncode == 0, result.stderr
        assert daemons.virsh("domstate", uuid).strip() == "running"
    assert daemons.qemu_pids() == [qemu]  # the same guest, not a new one
    assert _run(lab, "cancel", uuid, "one-0", "7").returncode == 0
    result = _run(lab, "reset", uuid, "one-0", "7", "one-0")
    assert result.returncode != 0 and f"{uuid}: no such domain" in result.stderr
    result = _run(lab, "save", uuid, CHECKPOINT, "one-0", "7", "one-0")
    assert result.returncode != 0 and f"{uuid}: no such domain" in result.stderr
    assert not os.path.lexists(lab.host("one-0").path(CHECKPOINT))
    result = _run(lab, "restore", CHECKPOINT, "one-0", uuid, "7", "one-0")
    assert result.returncode != 0 and "no checkpoint to restore" in result.stderr


def _tamper_console(lab: Lab, daemons: libvirt.Libvirt) -> None:
    """The checkpoint's own XML moved to 0.0.0.0, as whoever can write the file could."""
    saved = daemons.virsh("save-image-dumpxml", "--security-info", CHECKPOINT)
    assert "127.0.0.1" in saved
    with open(lab.host("one-0").path(f"{VM_DIR}/open.xml"), "w", encoding="utf-8") as f:
        f.write(saved.replace("127.0.0.1", "0.0.0.0"))
    daemons.virsh("save-image-define", CHECKPOINT, f"{VM_DIR}/open.xml")
    assert "0.0.0.0" in daemons.virsh("save-image-dumpxml", CHECKPOINT)


def test_save_and_restore_round_trip_keeps_the_domain_and_its_rules(node) -> None:
    lab, daemons = node
    uuid = _deploy(lab, daemons)
    lab.ssh("one-0").run(["sh", "-c", f"echo old > {CHECKPOINT}"])
    result, _ = _timed(lab, "save", uuid, CHECKPOINT, "one-0", "7", "one-0")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert _domains(daemons) == [] and daemons.qemu_pids() == []
    checkpoint = lab.host("one-0").path(CHECKPOINT)
    print(f"checkpoint: {os.path.getsize(checkpoint) / 2**20:.1f} MiB")
    [older] = glob.glob(checkpoint + ".*")  # the stock script's mv to <file>.<epoch>
    with open(older, encoding="utf-8") as f:
        assert f.read() == "old\n"
    os.unlink(older)
    _tamper_console(lab, daemons)
    result, _ = _timed(lab, "restore", CHECKPOINT, "one-0", uuid, "7", "one-0")
    assert (result.returncode, result.stdout.strip()) == (0, uuid), result.stderr
    assert _domains(daemons) == ["one-7"]
    assert daemons.virsh("domstate", "one-7").strip() == "running"
    live = etree.fromstring(daemons.virsh("dumpxml", "one-7").encode())
    assert live.findtext("uuid") == uuid
    assert [i.find("mtu").get("size") for i in live.iterfind("devices/interface")] == ["1450"]
    [graphics] = live.iterfind("devices/graphics")
    assert {graphics.get("listen")} | {l.get("address") for l in graphics.iterfind("listen")} == {
        "127.0.0.1"}
    assert not os.path.exists(checkpoint)  # spent, as stock
    again = _run(lab, "restore", CHECKPOINT, "one-0", uuid, "7", "one-0")  # oned retried
    assert (again.returncode, again.stdout.strip()) == (0, uuid), again.stderr


def test_restore_refuses_a_checkpoint_whose_guest_mtu_the_network_no_longer_allows(node) -> None:
    lab, daemons = node
    uuid = _deploy(lab, daemons)
    assert _run(lab, "save", uuid, CHECKPOINT, "one-0", "7", "one-0").returncode == 0
    oneadmin = lab.ssh("one-0")
    lower = vnm_vm_xml(7, "one-0", [SampleNic(0, "10.0.7.1", "02:00:0a:00:07:01", mtu=1400)])
    oneadmin.run(["sh", "-c", f"cp {VM_DIR}/vm.xml {VM_DIR}/vm.xml.1 && cat > {VM_DIR}/vm.xml"],
                 input=lower)
    try:
        result = _run(lab, "restore", CHECKPOINT, "one-0", uuid, "7", "one-0")
    finally:
        oneadmin.run(["mv", f"{VM_DIR}/vm.xml.1", f"{VM_DIR}/vm.xml"])
    assert result.returncode != 0
    assert "interface one-7-0: the checkpoint's guest MTU is 1450, above the 1400" in result.stderr
    assert _domains(daemons) == [] and os.path.isfile(lab.host("one-0").path(CHECKPOINT))
    result = _run(lab, "restore", CHECKPOINT, "one-0", uuid, "7", "one-0")
    assert (result.returncode, result.stdout.strip()) == (0, uuid), result.stderr


def test_the_write_gate_refuses_a_checkpoint_on_an_unmounted_datastore(node) -> None:
    lab, daemons = node
    uuid = _deploy(lab, daemons)
    lab.host("one-0").write_conf(HOST_CONF + '[storage]\nprofile = "lab"\n')
    try:
        result = _run(lab, "save", uuid, CHECKPOINT, "one-0", "7", "one-0")
    finally:
        lab.host("one-0").write_conf(CONF)
    assert result.returncode != 0
    assert f"{CHECKPOINT}: refusing to write (lab policy)" in result.stderr, result.stderr
    assert daemons.virsh("domstate", "one-7").strip() == "running"
    assert not os.path.lexists(lab.host("one-0").path(CHECKPOINT))


@pytest.mark.parametrize("action, args, match", [
    ("save", ["one-7'", CHECKPOINT], "deploy id: \"one-7'\" is neither"),
    ("save", ["UUID", "/var/tmp/one-7.save"], "checkpoint file: /var/tmp/one-7.save is outside"),
    ("save", ["UUID", f"{VM_DIR}/../../../../../../tmp/x"], "holds a '..' component"),
    ("restore", ["/tmp/checkpoint", "one-0", "UUID", "7"], "checkpoint file: /tmp/checkpoint is"),
    ("restore", [f"{DS}/0/8/checkpoint", "one-0", "UUID", "7"], "not in VM 7's directory"),
    ("restore", [CHECKPOINT, "one-0", "UUID", "seven"], "vmid: 'seven' is not a VM id"),
])
def test_bad_input_fails_naming_it_and_changes_nothing(node, action, args, match) -> None:
    lab, daemons = node
    uuid = _deploy(lab, daemons)
    [qemu] = daemons.qemu_pids()
    args = [uuid if a == "UUID" else a for a in args]
    result = _run(lab, action, *args, "one-0")
    assert result.returncode != 0 and match in result.stderr, result.stderr
    assert "ERROR MESSAGE --8<------" in result.stderr
    assert daemons.qemu_pids() == [qemu] and _domains(daemons) == ["one-7"]
    assert not glob.glob(lab.host("one-0").path(f"{VM_DIR}/checkpoint*"))
