"""Disk snapshots through tm/onemetal/snap_*, as oned runs them, checked by reading the disk back."""

from __future__ import annotations

import json
import os

import pytest

from tm_lab import DS, IMAGE, tm, tm_lab

DISK = f"{DS}/0/60/disk.0"


@pytest.fixture(scope="module")
def lab():
    with tm_lab(16) as lab:
        tm(lab, "clone", f"one-0:{IMAGE}", f"one-1:{DISK}", "60", "1")
        yield lab


def io(lab, command: str) -> str:
    return lab.ssh("one-1").run(["qemu-io", "-c", command, DISK]).stdout


def holds(lab, pattern: int) -> bool:
    """qemu-io exits 1 with "Pattern verification failed" when the data differs."""
    result = lab.ssh("one-1").run(["qemu-io", "-c", f"read -P {pattern:#x} 0 64k", DISK],
                                  check=False)
    return result.returncode == 0 and "verification failed" not in result.stdout


def chain(lab) -> list[str]:
    out = lab.ssh("one-1").run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                                DISK]).stdout
    return [i.get("backing-filename") for i in json.loads(out)]


def snap(lab, action: str, snap_id: int):
    return tm(lab, action, f"one-1:{DISK}", str(snap_id), "60", "0", check=False)


def test_create_revert_and_delete_keep_the_data_of_each_snapshot(lab):
    io(lab, "write -P 0xaa 0 64k")
    assert snap(lab, "snap_create", 0).returncode == 0
    assert chain(lab) == ["disk.0.snap/0", IMAGE, None]
    io(lab, "write -P 0xbb 0 64k")
    assert holds(lab, 0xbb) and not holds(lab, 0xaa)
    assert snap(lab, "snap_revert", 0).returncode == 0
    assert holds(lab, 0xaa)                                  # the change after snapshot 0 is gone
    assert snap(lab, "snap_create", 1).returncode == 0
    io(lab, "write -P 0xcc 0 64k")
    assert snap(lab, "snap_delete", 0).returncode == 0      # 1 now rests on the image itself
    assert chain(lab) == ["disk.0.snap/1", IMAGE, None]
    assert not os.path.exists(lab.host("one-1").path(f"{DISK}.snap/0"))
    assert snap(lab, "snap_revert", 1).returncode == 0
    assert holds(lab, 0xaa)                                  # snapshot 0's data, kept in 1


def test_bad_snapshot_requests_are_refused(lab):
    created = snap(lab, "snap_create", 1)                   # file 2 is the active overlay
    assert created.returncode != 0 and "SNAP_ID: snapshot file" in created.stderr
    missing = snap(lab, "snap_revert", 7)
    assert missing.returncode != 0 and "SNAP_ID:" in missing.stderr and "no snapshot 7" in missing.stderr
    raw = tm(lab, "mkimage", "8", "raw", f"one-1:{DS}/0/60/disk.1", "60", "0")
    assert raw.returncode == 0
    plain = tm(lab, "snap_create", f"one-1:{DS}/0/60/disk.1", "0", "60", "0", check=False)
    assert plain.returncode != 0 and "is not a qcow2 clone" in plain.stderr
