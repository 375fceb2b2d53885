"""The lab's NFS: nfs-ganesha in one host, the FUSE NFSv4 client mounted in another, used as oneadmin."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Iterator

import pytest

from conftest import installed_lab
from onemetal.lab import Lab, nfs
from onemetal.lab.host import ONEADMIN_ID
from onemetal.lab.registry import alive
from onemetal.storage import policy
from onemetal.storage.mounts import covering, parse

DS = "/var/lib/one/datastores"


def _mount(lab: Lab, server: nfs.NfsServer, host: str) -> None:
    h = lab.host(host)
    nfs.install_client(h)
    h.run(["mkdir", "-p", DS])
    h.run(["mount", "-t", "fuse.nfs4", server.source, DS])


@pytest.fixture(scope="module")
def share() -> Iterator[tuple[Lab, nfs.NfsServer]]:
    with installed_lab(2) as lab:
        server = nfs.start_server(lab.host("one-0"), lab.record,  # type: ignore[arg-type]
                                  owner=ONEADMIN_ID)
        print(f"\nganesha answered in {server.started_in:.2f} s")
        _mount(lab, server, "one-1")
        yield lab, server
        assert nfs.stop_clients(lab.host("one-1")) == []
        server.stop()


def _oneadmin(lab: Lab, *argv: str) -> str:
    return lab.ssh("one-1").run(list(argv)).stdout


def test_ganesha_starts_and_stops_leaving_no_process() -> None:
    with Lab(hosts=1) as lab:
        server = nfs.start_server(lab.hosts[0], lab.record)  # type: ignore[arg-type]
        assert alive(server.pid)
        with open(f"/proc/{server.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == nfs.GANESHA.encode()
        server.stop()
        assert not alive(server.pid)
        left = subprocess.run(["pgrep", "-f", os.path.join(lab.hosts[0].workdir, "nfs")],
                              capture_output=True, text=True).stdout.split()
        assert [p for p in left if alive(int(p))] == []


def test_oneadmin_writes_through_the_mount_and_owns_the_file_on_the_server(share) -> None:
    lab, server = share
    lab.ssh("one-1").run(["sh", "-c", f"mkdir -p {DS}/1 && printf hello > {DS}/1/a.txt"])
    assert _oneadmin(lab, "cat", f"{DS}/1/a.txt") == "hello"
    on_server = os.path.join(server.export_dir, "1", "a.txt")
    with open(on_server, encoding="ascii") as f:
        assert f.read() == "hello"
    st = os.stat(on_server)
    assert (st.st_uid, st.st_gid) == (ONEADMIN_ID, ONEADMIN_ID)
    assert oct(st.st_mode & 0o777) == oct(0o644)  # the creator's umask 022, as on a kernel mount


def test_qemu_img_backing_chain_reads_back_on_mount_and_server(share) -> None:
    lab, server = share
    base, top = f"{DS}/1/base.qcow2", f"{DS}/1/top.qcow2"
    _oneadmin(lab, "qemu-img", "create", "-q", "-f", "qcow2", base, "64M")
    _oneadmin(lab, "qemu-io", "-c", "write -P 0x5a 1M 2M", base)
    _oneadmin(lab, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, top)
    chain = json.loads(_oneadmin(lab, "qemu-img", "info", "--output=json", "--backing-chain", top))
    assert [c["filename"] for c in chain] == [top, base]
    assert chain[0]["virtual-size"] == 64 << 20
    # The same chain read from the server's disk: its host sees the export at the same path.
    on_server = lab.host("one-0")
    on_server.run(["mkdir", "-p", DS])
    on_server.run(["mount", "--bind", server.export_dir, DS])
    local = json.loads(on_server.run(["qemu-img", "info", "--output=json", "-U",
                                      "--backing-chain", top]).stdout)
    on_server.run(["umount", DS])
    assert [(c["filename"], c["format"]) for c in local] == [(top, "qcow2"), (base, "qcow2")]
    assert local[1]["virtual-size"] == 64 << 20
    # Data written through the mount reads back through the overlay.
    out = _oneadmin(lab, "qemu-io", "-r", "-c", "read -P 0x5a 1M 2M", top)
    assert "read 2097152/2097152 bytes" in out


def test_file_operations_the_drivers_use(share) -> None:
    lab, server = share
    script = (f"cd {DS}/1 && mkdir d && ln -s base.qcow2 d/disk.0 && readlink d/disk.0 && "
              f"mv a.txt b.txt && truncate -s 10M b.txt && stat -c %s b.txt && chmod 600 b.txt && "
              f"stat -c %a b.txt && touch -d @1000000000 b.txt && stat -c %Y b.txt && "
              f"dd if=/dev/zero of=b.txt bs=4k count=1 seek=5 conv=notrunc,fsync status=none && "
              f"stat -c %s b.txt && ls d && rm d/disk.0 && rmdir d && rm b.txt && ls")
    out = _oneadmin(lab, "sh", "-c", script).split()
    assert out == ["base.qcow2", "10485760", "600", "1000000000", "10485760", "disk.0",
                   "base.qcow2", "top.qcow2"]
    assert sorted(os.listdir(os.path.join(server.export_dir, "1"))) == ["base.qcow2", "top.qcow2"]
    df = _oneadmin(lab, "df", "-B1", "--output=source,size", DS).split()
    assert df[2] == server.source and int(df[3]) > 0


def test_mountinfo_shows_the_share_lab_policy_accepts_efs_refuses(share) -> None:
    lab, server = share
    with open(f"/proc/{lab.host('one-1').anchor_pid}/mountinfo", encoding="utf-8") as f:
        mount = covering(parse(f.read()), f"{DS}/1/top.qcow2")
    assert mount is not None
    assert (mount.mount_point, mount.fstype, mount.source) == (DS, "fuse.nfs4", server.source)
    path = f"{DS}/1"
    assert policy.problems(mount, path, policy.profile("lab", source=server.source)) == []
    assert policy.problems(mount, path, policy.profile("lab", source="other:/x")) == [
        f"source {server.source}, want other:/x"]
    assert policy.problems(mount, path, policy.profile("efs")) == [
        f"{path} is on {DS} (fuse.nfs4 from {server.source}), not an NFS share (want nfs4)"]


def test_large_writes_land_intact_on_the_server(share) -> None:
    lab, server = share
    # Writes of up to 1 MiB go out as many pipelined NFS WRITEs: every byte must arrive in place.
    lab.ssh("one-1").run(["sh", "-c", "head -c 5000000 /dev/urandom > /var/tmp/blob && "
                          f"dd if=/var/tmp/blob of={DS}/1/blob bs=1M conv=fsync status=none"])
    here = _oneadmin(lab, "sha256sum", "/var/tmp/blob").split()[0]
    through = _oneadmin(lab, "sha256sum", f"{DS}/1/blob").split()[0]
    on_server = subprocess.run(["sha256sum", os.path.join(server.export_dir, "1", "blob")],
                               capture_output=True, text=True, check=True).stdout.split()[0]
    assert here == through == on_server
    _oneadmin(lab, "rm", f"{DS}/1/blob", "/var/tmp/blob")


def _server_sha(server: nfs.NfsServer, *parts: str) -> str:
    return subprocess.run(["sha256sum", os.path.join(server.export_dir, *parts)],
                          capture_output=True, text=True, check=True).stdout.split()[0]


def test_copies_within_one_mount_land_intact_on_the_server(share) -> None:
    lab, server = share
    # A copy within one mount has two files open at once (the TM's full copy of a raw image);
    # 5 MiB, whole sectors: qemu-img rounds a raw image's size up to 512 bytes.
    lab.ssh("one-1").run(["sh", "-c", f"mkdir -p {DS}/1 && head -c {5 << 20} /dev/urandom > {DS}/1/src"])
    _oneadmin(lab, "cp", f"{DS}/1/src", f"{DS}/1/by-cp")
    _oneadmin(lab, "qemu-img", "convert", "-O", "raw", f"{DS}/1/src", f"{DS}/1/by-qemu")
    want = _server_sha(server, "1", "src")
    assert [_server_sha(server, "1", name) for name in ("by-cp", "by-qemu")] == [want, want]
    assert os.path.getsize(os.path.join(server.export_dir, "1", "by-qemu")) == 5 << 20
    _oneadmin(lab, "rm", f"{DS}/1/src", f"{DS}/1/by-cp", f"{DS}/1/by-qemu")
