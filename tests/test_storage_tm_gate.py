"""The transfer driver's write-gate, action by action: with the datastores not on the share their
profile wants (profile "lab" with the share unmounted, or a directory of the root disk mounted
there; profile "efs" and a tmpfs there), every action that writes fails naming the path and the
policy, and the host that would have written keeps its datastores exactly as they were."""

from __future__ import annotations

import base64
import os
import subprocess
from contextlib import contextmanager
from typing import Iterator

import pytest

from tm_lab import DS, IMAGE, TM, conf, tm, tm_lab

VM = f"{DS}/0/60"
CONTEXT = "/var/lib/one/vms/60/context.sh"
NEW_IMAGE = f"{DS}/1/f00d"
# (action, its arguments as oned writes them, the path the refusal names), in an order that
# also works when the gate opens (the last test runs them so).
WRITES = (
    ("clone", (f"one-0:{IMAGE}", f"one-1:{VM}/disk.2", "60", "1"), VM),
    ("ln", (f"one-0:{IMAGE}", f"one-1:{VM}/disk.3", "60", "1"), VM),
    ("context", (CONTEXT, f"one-1:{VM}/disk.4", "60", "0"), VM),
    ("mkimage", ("8", "qcow2", f"one-1:{VM}/disk.5", "60", "0"), VM),
    ("mkswap", ("8", f"one-1:{VM}/disk.6", "60", "0"), VM),
    ("resize", (f"one-1:{VM}/disk.1", "16", "60"), VM),
    ("snap_create", (f"one-1:{VM}/disk.0", "1", "60", "0"), VM),
    ("snap_revert", (f"one-1:{VM}/disk.0", "0", "60", "0"), VM),
    ("snap_delete", (f"one-1:{VM}/disk.0", "1", "60", "0"), VM),
    ("cpds", (f"one-1:{VM}/disk.0", f"one-0:{NEW_IMAGE}", "-1", "60", "1"), NEW_IMAGE),
    ("delete", (f"one-1:{VM}/disk.1", "60", "0"), VM),
    ("mv", (f"one-1:{VM}", f"one-1:{DS}/100/60", "60", "0"), VM),
    ("delete", (f"one-1:{DS}/100/60", "60", "100"), f"{DS}/100/60"),
)
# They write nothing on a shared datastore (as shared/qcow2's): no gate, and nothing changes.
NO_WRITES = (
    ("mvds", (f"one-1:{VM}/disk.0", f"one-0:{IMAGE}", "60", "1")),
    ("premigrate", ("one-1", "one-0", VM, "60", "0")),
    ("postmigrate", ("one-1", "one-0", VM, "60", "0")),
    ("failmigrate", ("one-1", "one-0", VM, "60", "0")),
)


@pytest.fixture(scope="module")
def lab():
    """VM 60 on one-1: a qcow2 clone with snapshot 0 (disk.0), a raw disk (disk.1)."""
    with tm_lab(16) as lab:
        fe = lab.ssh("one-0")
        fe.run(["mkdir", "-p", os.path.dirname(CONTEXT), f"{DS}/100"])
        fe.run(["tee", CONTEXT], input="DISK_ID='4'\nETH0_MAC='02:00:0a:00:00:02'\n")
        tm(lab, "clone", f"one-0:{IMAGE}", f"one-1:{VM}/disk.0", "60", "1")
        tm(lab, "snap_create", f"one-1:{VM}/disk.0", "0", "60", "0")
        tm(lab, "mkimage", "8", "raw", f"one-1:{VM}/disk.1", "60", "0")
        yield lab


def tree(lab, host: str) -> dict[str, tuple]:
    """Every entry under the host's datastores: type, size, mtime, link target."""
    root = lab.host(host).path(DS)
    out: dict[str, tuple] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else None
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
    return out


@contextmanager
def profiles(lab, **by_host: str) -> Iterator[None]:
    for name, profile in by_host.items():
        lab.host(name.replace("_", "-")).write_conf(conf(profile))
    try:
        yield
    finally:
        for host in lab.hosts:
            host.write_conf(conf("none"))


def assert_all_refused(lab, policy: str, why: str) -> None:
    before = tree(lab, "one-1")
    assert "0/60/disk.0.snap/0" in before and "0/60/disk.1" in before   # the test sees the VM
    for action, args, path in WRITES:
        result = tm(lab, action, *args, check=False)
        assert result.returncode != 0, (action, result.stdout)
        assert f"{path}: refusing to write ({policy} policy)" in result.stderr, \
            (action, result.stderr)
        assert why in result.stderr, (action, result.stderr)
        assert tree(lab, "one-1") == before, action


def test_profile_lab_without_its_mount_refuses_every_write(lab):
    with profiles(lab, one_0="lab", one_1="lab"):
        assert_all_refused(lab, "lab", "), not an NFS share (want fuse.*)")


def test_profile_lab_refuses_every_write_with_the_share_unmounted(lab):
    """The host's datastores directory bare, as after a lost mount: it stays as it is."""
    host = lab.host("one-1")
    host.run(["umount", DS])
    try:
        before = tree(lab, "one-1")
        assert "0/60/disk.0" not in before                     # the share is gone here
        with profiles(lab, one_0="lab", one_1="lab"):
            for action, args, path in WRITES:
                result = tm(lab, action, *args, check=False)
                assert result.returncode != 0, (action, result.stdout)
                assert f"{path}: refusing to write (lab policy): {path} is on /" in result.stderr, \
                    (action, result.stderr)
                assert tree(lab, "one-1") == before, action
    finally:
        host.run(["mount", "--bind", os.path.join(lab.workdir, "shared-datastores"), DS])


def test_profile_efs_refuses_a_tmpfs_at_the_datastores_path(lab):
    host = lab.host("one-1")
    shared = os.path.join(lab.workdir, "shared-datastores")
    host.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", DS])
    try:
        # The same VM on the wrong file system: cp -a as root keeps owners, modes and mtimes.
        subprocess.run(["cp", "-a", "--", f"{shared}/.", host.path(DS) + "/"], check=True,
                       timeout=60)
        with profiles(lab, one_0="efs", one_1="efs"):
            assert_all_refused(lab, "efs", f"is on {DS} (tmpfs from tmpfs), not an NFS share")
    finally:
        host.run(["umount", DS])


def test_actions_that_write_nothing_pass_and_change_nothing(lab):
    before = tree(lab, "one-1")
    with profiles(lab, one_0="lab", one_1="lab"):
        for action, args in NO_WRITES:
            result = tm(lab, action, *args, check=False)
            assert result.returncode == 0, (action, result.stderr)
    assert tree(lab, "one-1") == before


def test_the_gate_is_the_writing_machines(lab):
    """TM actions write on the VM's host (cpds too: qemu-img convert there writes the new image
    through the host's mount of the image datastore); only monitor writes on the frontend."""
    data = base64.b64encode(b"<DS_DRIVER_ACTION_DATA></DS_DRIVER_ACTION_DATA>").decode()
    with profiles(lab, one_0="lab", one_1="none"):
        tm(lab, "mkimage", "8", "raw", f"one-1:{DS}/0/61/disk.0", "61", "0")
        tm(lab, "cpds", f"one-1:{DS}/0/61/disk.0", f"one-0:{DS}/1/beef", "-1", "61", "1")
        refused = lab.ssh("one-0").run([f"{TM}/monitor", "0"], input=data, check=False)
        assert refused.returncode != 0
        assert f"{DS}/0: refusing to write (lab policy)" in refused.stderr, refused.stderr
    with profiles(lab, one_0="none", one_1="lab"):
        lab.ssh("one-0").run([f"{TM}/monitor", "0"], input=data)
        refused = tm(lab, "cpds", f"one-1:{DS}/0/61/disk.0", f"one-0:{DS}/1/cafe", "-1", "61",
                     "1", check=False)
        assert f"{DS}/1/cafe: refusing to write (lab policy)" in refused.stderr, refused.stderr
    assert os.path.isfile(lab.host("one-1").path(f"{DS}/1/beef"))
    assert not os.path.lexists(lab.host("one-1").path(f"{DS}/1/cafe"))
    tm(lab, "delete", f"one-1:{DS}/0/61", "61", "0")


def test_the_same_writes_succeed_where_the_gate_opens(lab):
    """What the refusals above would have done: each action writes under profile none."""
    for action, args, _ in WRITES:
        result = tm(lab, action, *args, check=False)
        assert result.returncode == 0, (action, result.stderr)
    after = tree(lab, "one-1")
    assert "1/f00d" in after and "0/60" not in after and "100/60" not in after
