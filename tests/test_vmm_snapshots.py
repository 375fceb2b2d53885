"""snapshot_create, snapshot_revert and snapshot_delete of remotes/vmm/onemetal over SSH as
oneadmin: libvirt internal snapshots of a running TCG guest with a qcow2 disk (tests/vmm_guest.py)."""

from __future__ import annotations

import os
import time
from typing import Iterator

import pytest
from vmm_guest import VM_DIR, action_data, failed, guest, run, vm_xml

from onemetal.lab import Lab, libvirt


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Lab, libvirt.Libvirt]]:
    with guest() as pair:
        yield pair


def _snapshots(daemons: libvirt.Libvirt) -> list[str]:
    return daemons.virsh("snapshot-list", "one-7", "--name").split()


def _file(lab: Lab, name: str) -> str:
    return lab.host("one-0").path(f"{VM_DIR}/{name}.xml")


def _state(daemons: libvirt.Libvirt) -> str:
    return daemons.virsh("domstate", "one-7").strip()


def test_create_revert_delete_round_trip(node) -> None:
    lab, daemons = node
    data = action_data(vm_xml())
    begin = time.monotonic()
    created = run(lab, "snapshot_create", "one-7", "0", "7", "one-0", input=data)
    print(f"\nsnapshot_create over SSH: {time.monotonic() - begin:.2f} s")
    assert (created.returncode, created.stdout) == (0, "snap-0\n"), created.stderr
    assert _snapshots(daemons) == ["snap-0"]
    with open(_file(lab, "snap-0"), encoding="utf-8") as f:
        assert "<name>snap-0</name>" in f.read()  # for migrate to redefine, as the stock driver
    daemons.virsh("suspend", "one-7")
    assert _state(daemons) == "paused"
    begin = time.monotonic()
    reverted = run(lab, "snapshot_revert", "one-7", "snap-0", input=data)
    print(f"snapshot_revert over SSH: {time.monotonic() - begin:.2f} s")
    assert reverted.returncode == 0, reverted.stderr
    assert _state(daemons) == "running"  # the snapshot's state, taken while running
    assert run(lab, "snapshot_create", "one-7", "1", "7", "one-0", input=data).stdout == "snap-1\n"
    deleted = run(lab, "snapshot_delete", "one-7", "snap-0", "7", "one-0", input=data)
    assert deleted.returncode == 0, deleted.stderr
    assert _snapshots(daemons) == ["snap-1"]
    assert not os.path.exists(_file(lab, "snap-0")) and os.path.exists(_file(lab, "snap-1"))


@pytest.mark.parametrize("action, args, field", [
    ("snapshot_revert", ["snap-9"], "hypervisor id: one-7 has no snapshot snap-9"),
    ("snapshot_delete", ["snap-9", "7", "one-0"], "hypervisor id: one-7 has no snapshot snap-9"),
    ("snapshot_delete", ["snap-1;reboot", "7", "one-0"], "hypervisor id: 'snap-1;reboot'"),
    ("snapshot_create", ["x", "7", "one-0"], "snap id: 'x' is not an integer"),
    ("snapshot_revert", ["snap-1"], "deploy id"),  # with a hostile deploy id below
    ("snapshot_create", ["2", "7", "one-0"], "one-99: no such domain"),  # and another VM's
])
def test_bad_input_fails_naming_it_and_changes_nothing(node, action, args, field) -> None:
    lab, daemons = node
    before = _snapshots(daemons)
    domain = {"deploy id": "one-7/../x", "one-99: no such domain": "one-99"}.get(field, "one-7")
    result = run(lab, action, domain, *args, input=action_data(vm_xml()))
    assert failed(result, field), result.stderr
    assert _snapshots(daemons) == before and _state(daemons) == "running"
