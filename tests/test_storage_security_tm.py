"""TM actions on the host: disk sizes bounded by the free space, and links out of the datastores.

A user chooses a volatile disk's SIZE and a resize's new size; a sparse file of any
size is made at once, and the guest could then fill the share every VM lives on.
A disk.<i> that resolves outside the datastores (a file of the host) is never read
into an image, while rm and mv act on the link, never on what it points at.
"""

from __future__ import annotations

import os

import pytest
from tm_lab import DS, IMAGE, tm, tm_lab

VM_DIR = f"{DS}/0/60"


@pytest.fixture(scope="module")
def lab():
    with tm_lab(16) as lab:
        lab.ssh("one-1").run(["mkdir", "-p", VM_DIR])
        yield lab


def free_mb(lab) -> int:
    st = os.statvfs(lab.host("one-1").path(DS))
    return st.f_bavail * st.f_frsize >> 20


def test_mkimage_and_resize_beyond_the_free_space_are_refused(lab):
    over = str(free_mb(lab) + 1024)
    result = tm(lab, "mkimage", over, "raw", f"one-1:{VM_DIR}/disk.1", "60", "0", check=False)
    assert result.returncode != 0
    assert f"DISK/SIZE: {over} MB is more than the" in result.stderr, result.stderr
    assert not os.path.lexists(lab.host("one-1").path(f"{VM_DIR}/disk.1"))
    tm(lab, "mkimage", "8", "raw", f"one-1:{VM_DIR}/disk.1", "60", "0")
    tm(lab, "resize", f"one-1:{VM_DIR}/disk.1", "16", "60")
    grown = str(free_mb(lab) + 1024 + 16)
    result = tm(lab, "resize", f"one-1:{VM_DIR}/disk.1", grown, "60", check=False)
    assert result.returncode != 0 and "DISK/SIZE: " in result.stderr, result.stderr
    assert os.path.getsize(lab.host("one-1").path(f"{VM_DIR}/disk.1")) == 16 << 20


def test_a_disk_linking_outside_the_datastores_is_not_saved_and_rm_keeps_the_target(lab):
    host = lab.host("one-1")
    lab.ssh("one-1").run(["ln", "-sfn", "/etc/hostname", f"{VM_DIR}/disk.2"])
    saved = f"{DS}/1/5e5e"
    result = tm(lab, "cpds", f"one-1:{VM_DIR}/disk.2", f"one-0:{saved}", "-1", "60", "1",
                check=False)
    assert result.returncode != 0
    assert f"SRC: {VM_DIR}/disk.2 resolves to /etc/hostname, outside the datastores" \
        in result.stderr, result.stderr
    assert not os.path.lexists(host.path(saved))
    tm(lab, "delete", f"one-1:{VM_DIR}/disk.2", "60", "0")
    assert not os.path.lexists(host.path(f"{VM_DIR}/disk.2"))
    assert os.path.isfile(host.path("/etc/hostname"))


def test_a_cloned_disk_is_still_saved(lab):
    tm(lab, "clone", f"one-0:{IMAGE}", f"one-1:{VM_DIR}/disk.0", "60", "1")
    tm(lab, "cpds", f"one-1:{VM_DIR}/disk.0", f"one-0:{DS}/1/c0c0", "-1", "60", "1")
    assert os.path.getsize(lab.host("one-0").path(f"{DS}/1/c0c0")) > 0
