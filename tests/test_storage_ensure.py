"""`onemetal mount ensure` on a lab host, as oneadmin over SSH, against the lab's real NFS server."""

from __future__ import annotations

import os
import sys
import time
from typing import Iterator

import pytest

from conftest import installed_lab
from onemetal.lab import Lab, nfs
from onemetal.lab.host import ONEADMIN_ID, LabHost
from onemetal.run import Result
from onemetal.storage import mount_ensure
from onemetal.storage.mounts import covering, parse

DS = "/var/lib/one/datastores"
HOST = "one-1"


def _conf(source: str, retries: int = 3) -> str:
    return (f'[storage]\nprofile = "lab"\nsource = "{source}"\nmount_timeout = 5.0\n'
            f"mount_retries = {retries}\n")


@pytest.fixture(scope="module")
def share() -> Iterator[tuple[Lab, nfs.NfsServer]]:
    with installed_lab(2) as lab:
        server = nfs.start_server(lab.host("one-0"), lab.record,  # type: ignore[arg-type]
                                  owner=ONEADMIN_ID)
        nfs.install_client(lab.host(HOST))
        lab.host(HOST).write_conf(_conf(server.source))
        yield lab, server
        host = lab.host(HOST)
        assert nfs.stop_clients(host) == []
        host.run(["chattr", "-R", "-i", host.path(DS)], check=False)  # lets the lab remove it
        server.stop()


def _ensure(lab: Lab, *args: str) -> Result:
    return lab.ssh(HOST).run_entry("mount-ensure", list(args), check=False)


def _mount_of(host: LabHost, path: str):  # type: ignore[no-untyped-def]
    with open(f"/proc/{host.anchor_pid}/mountinfo", encoding="utf-8") as f:
        return covering(parse(f.read()), path)


def _umount(lab: Lab, path: str) -> None:
    lab.ssh(HOST).run(["sudo", "-n", "umount", path])


def test_ensure_mounts_then_is_a_no_op_then_umount_leaves_the_bare_dir(share) -> None:
    lab, server = share
    host = lab.host(HOST)
    first = _ensure(lab, DS)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{DS}: mounted {server.source} (fuse.nfs4)"
    mount = _mount_of(host, DS)
    assert (mount.mount_point, mount.fstype, mount.source) == (DS, "fuse.nfs4", server.source)
    lab.ssh(HOST).run(["sh", "-c", f"echo x > {DS}/probe"])
    assert os.path.exists(os.path.join(server.export_dir, "probe"))
    second = _ensure(lab, DS)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"{DS}: already on {server.source} (fuse.nfs4), nothing to do"
    assert sum(1 for m in [_mount_of(host, DS)] if m.mount_point == DS) == 1
    # A datastore under the mounted directory is already on the share too.
    assert "nothing to do" in _ensure(lab, "0").stdout
    _umount(lab, DS)
    assert _mount_of(host, DS).mount_point != DS
    assert os.listdir(host.path(DS)) == []
    os.unlink(os.path.join(server.export_dir, "probe"))


def test_non_empty_dir_is_refused_and_nothing_mounted(share) -> None:
    lab, _ = share
    host = lab.host(HOST)
    lab.ssh(HOST).run(["sh", "-c", f"mkdir -p {DS}/105 && touch {DS}/105/leftover"])
    result = _ensure(lab, "105")
    assert result.returncode != 0
    assert f"{DS}/105 is not empty: refusing to mount over files" in result.stderr
    assert _mount_of(host, f"{DS}/105").mount_point != f"{DS}/105"
    lab.ssh(HOST).run(["rm", "-r", f"{DS}/105"])


@pytest.mark.parametrize("args, field", [
    (["/var/lib/one/datastores/../x"], "DATASTORE_DIR"),
    (["/etc"], "DATASTORE_DIR"),
    (["1", "--source", "srv:/x,nolock"], "--source"),
    (["1", "--source", "-o:/x"], "--source"),
    (["1", "--source"], "--source"),
    ([], "argv"),
])
def test_bad_input_names_the_field(share, args: list[str], field: str) -> None:
    lab, _ = share
    result = _ensure(lab, *args)
    assert result.returncode != 0
    assert f"{field}:" in result.stderr.splitlines()[0] or field in result.stderr


def test_immutable_bare_mount_point_then_mounted(share) -> None:
    lab, server = share
    host = lab.host(HOST)
    result = _ensure(lab, "7", "--immutable")
    assert result.returncode == 0, result.stderr
    assert _mount_of(host, f"{DS}/7").source == server.source
    _umount(lab, f"{DS}/7")
    # The bare directory underneath refuses every write, even oneadmin's in its own tree.
    denied = lab.ssh(HOST).run(["touch", f"{DS}/7/x"], check=False)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    assert "i" in host.run(["lsattr", "-d", host.path(f"{DS}/7")]).stdout.split()[0]


def test_server_stopped_fails_bounded_with_a_clear_message(share) -> None:
    lab, server = share
    host = lab.host(HOST)
    host.write_conf(_conf(server.source, retries=2))
    server.stop()
    try:
        begin = time.monotonic()
        result = _ensure(lab, "8")
        took = time.monotonic() - begin
    finally:
        host.write_conf(_conf(server.source))
        restarted = nfs.start_server(lab.host("one-0"), lab.record,  # type: ignore[arg-type]
                                     export_dir=server.export_dir, owner=ONEADMIN_ID)
        server.pid = restarted.pid
    print(f"\nmount ensure against a stopped server failed in {took:.1f} s (2 attempts)")
    assert result.returncode != 0
    assert (f"could not mount {server.source} on {DS}/8 in 2 attempts of at most 5 s"
            in result.stderr), result.stderr
    assert _mount_of(host, f"{DS}/8").mount_point != f"{DS}/8"


def test_mount_options_follow_the_profile() -> None:
    from onemetal.storage.policy import profile

    assert mount_ensure._mount_argv(profile("efs"), "fs-1.efs:/", "/d") == [
        "mount", "-t", "nfs4", "-o",
        "vers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport", "fs-1.efs:/", "/d"]
    assert mount_ensure._mount_argv(profile("efs", tls=True), "fs-1.efs:/", "/d") == [
        "mount", "-t", "efs", "-o", "tls", "fs-1.efs:/", "/d"]
    assert mount_ensure._mount_argv(profile("nfs", options=(("hard", None), ("vers", "4.2"))),
                                    "s:/x", "/d") == ["mount", "-t", "nfs4", "-o", "hard,vers=4.2",
                                                      "s:/x", "/d"]
    assert mount_ensure._mount_argv(profile("lab"), "s:/export", "/d") == [
        "mount", "-t", "fuse.nfs4", "s:/export", "/d"]


def test_cli_reaches_the_host_over_ssh(share) -> None:
    lab, server = share
    cli = [sys.executable, "-m", "onemetal.cli.onemetal", "mount", "ensure", "--host", HOST]
    first = lab.frontend_cli().run([*cli, "9"], check=False)
    assert (first.returncode, first.stdout.strip()) == (0, f"{DS}/9: mounted {server.source} (fuse.nfs4)")
    again = lab.frontend_cli().run([*cli, "9"], check=False)
    assert again.stdout.strip().endswith("nothing to do")
    bad = lab.frontend_cli().run([*cli, "9", "--source", "x:/y z"], check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"onemetal: {HOST}: ERROR: mount-ensure: --source:"), bad.stderr
    _umount(lab, f"{DS}/9")


def test_immutable_where_the_file_system_has_no_such_flag_fails_before_mounting(share) -> None:
    lab, server = share
    host = lab.host(HOST)
    for name in os.listdir(host.path(DS)):  # the bare mount points earlier tests left
        host.run(["chattr", "-i", f"{DS}/{name}"])
        host.run(["rmdir", f"{DS}/{name}"])
    assert _ensure(lab, DS).returncode == 0  # the lab's FUSE share, which has no immutable flag
    # Now datastore 13 wants kernel NFS: its directory sits on the FUSE share, so the chattr
    # fails, naming where, and nothing is mounted.
    host.write_conf(_conf(server.source) + 'datastore_profiles = ["13=nfs"]\n')
    try:
        result = _ensure(lab, "13", "--immutable")
    finally:
        host.write_conf(_conf(server.source))
    assert result.returncode != 0
    assert f"chattr +i {DS}/13 failed on {DS} (fuse.nfs4)" in result.stderr, result.stderr
    assert _mount_of(host, f"{DS}/13").mount_point == DS
    lab.ssh(HOST).run(["rmdir", f"{DS}/13"])
    _umount(lab, DS)
