"""`onemetal doctor storage` on recorded mountinfo lines of real NFS/EFS mounts, and on this
machine: a local run and its CLI, the NFS port check against a real listener and a closed
port, and a share that never answers (a FUSE mount nobody serves)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest

from onemetal import doctor_report
from onemetal.config import StorageConfig
from onemetal.errors import InputError
from onemetal.run import Runner
from onemetal.storage import datastores, doctor, probe, reach
from onemetal.storage.mounts import covering, parse

DIR = "/var/lib/one/datastores"
EFS = "fs-0123abcd.efs.us-east-1.amazonaws.com:/"
ROOT = "1 0 8:1 / / rw - ext4 /dev/vda rw"
EFS_OPTIONS = ("rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,noresvport,proto=tcp,"
               "timeo=600,retrans=2,sec=sys,clientaddr=10.0.1.23,local_lock=none,addr=10.0.1.45")
NFS41_OPTIONS = ("rw,vers=4.1,rsize=131072,wsize=131072,namlen=255,hard,proto=tcp,timeo=600,"
                 "retrans=2,sec=sys,clientaddr=192.168.1.10,local_lock=none,addr=192.168.1.5")
# As /proc/self/mountinfo lists them on real clients (Linux 6.x).
RECORDED = {
    "efs": f"36 25 0:47 / {DIR} rw,relatime shared:1 - nfs4 {EFS} {EFS_OPTIONS}",
    "efs-tls": f"36 25 0:47 / {DIR} rw,relatime shared:1 - nfs4 127.0.0.1:/ "
               + EFS_OPTIONS.replace("proto=tcp", "proto=tcp,port=20049")
               .replace("10.0.1.23", "127.0.0.1").replace("10.0.1.45", "127.0.0.1"),
    "nfs41": f"40 25 0:51 / {DIR} rw,relatime shared:3 - nfs4 nas.example.net:/export/one "
             + NFS41_OPTIONS,
    "soft": f"40 25 0:51 / {DIR} rw,relatime shared:3 - nfs4 nas.example.net:/export/one "
            + NFS41_OPTIONS.replace("hard", "soft"),
    "efs-no-noresvport": f"36 25 0:47 / {DIR} rw,relatime shared:1 - nfs4 {EFS} "
                         + EFS_OPTIONS.replace("noresvport,", ""),
}
EFS_REMOUNT = ("remount with -o vers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,"
               f"noresvport (umount {DIR}; run `onemetal mount ensure 100`)")


def mount_checks(recorded: str, **settings: object) -> list[doctor_report.Check]:
    cfg = StorageConfig(datastores_dir=DIR, **settings)  # type: ignore[arg-type]
    mounts = parse(f"{ROOT}\n{recorded}")
    path = f"{DIR}/100"
    return doctor.mount_checks(100, path, covering(mounts, path),
                               datastores.policy_for(100, cfg), cfg)


def test_an_efs_mount_with_awss_options_passes():
    checks = mount_checks(RECORDED["efs"], profile="efs", source=EFS)
    assert [(c.status, c.name) for c in checks] == [("OK", "ds 100 mount")]
    assert checks[0].detail.startswith(f"mounted: yes, on {DIR} (nfs4 from {EFS}, rw,")
    assert "noresvport" in checks[0].detail and "addr=10.0.1.45" in checks[0].detail


def test_efs_through_the_tls_tunnel_passes_only_with_tls_set():
    assert [c.status for c in mount_checks(RECORDED["efs-tls"], source=EFS, tls=True)] == ["OK"]
    checks = mount_checks(RECORDED["efs-tls"], source=EFS)
    assert [(c.status, c.detail, c.remedy) for c in checks[1:]] == [
        ("FAIL", f"source 127.0.0.1:/, want {EFS}", "run `onemetal mount ensure 100`")]


def test_a_plain_nfs41_mount_names_each_option_efs_wants():
    assert [c.status for c in mount_checks(RECORDED["nfs41"], profile="nfs")] == ["OK"]
    checks = mount_checks(RECORDED["nfs41"], profile="efs")
    assert [(c.status, c.detail) for c in checks[1:]] == [
        ("FAIL", "option rsize=131072, want rsize=1048576"),
        ("FAIL", "option wsize=131072, want wsize=1048576"),
        ("FAIL", "option noresvport missing")]
    assert {c.remedy for c in checks[1:]} == {EFS_REMOUNT}


def test_a_soft_mount_fails_with_the_remount_remedy():
    checks = mount_checks(RECORDED["soft"], profile="nfs")
    assert [(c.name, c.status, c.detail) for c in checks[1:]] == [
        ("ds 100 policy", "FAIL", "option hard missing (mounted soft: I/O errors would reach the VMs)")]
    assert checks[1].remedy == f"remount with -o hard (umount {DIR}; run `onemetal mount ensure 100`)"


def test_one_missing_option_is_one_line():
    checks = mount_checks(RECORDED["efs-no-noresvport"], source=EFS)
    assert [(c.status, c.detail, c.remedy) for c in checks[1:]] == [
        ("FAIL", "option noresvport missing", EFS_REMOUNT)]


def test_an_unmounted_datastore_says_mount_ensure():
    cfg = StorageConfig(datastores_dir=DIR)
    checks = doctor.mount_checks(100, f"{DIR}/100", covering(parse(ROOT), f"{DIR}/100"),
                                 datastores.policy_for(100, cfg), cfg)
    assert [(c.status, c.detail, c.remedy) for c in checks] == [
        ("FAIL", f"mounted: no ({DIR}/100 is on / (ext4))", "run `onemetal mount ensure 100`")]


def test_the_nfs_server_address_comes_from_addr_then_the_source():
    efs, tls, soft = (parse(RECORDED[k])[0] for k in ("efs", "efs-tls", "soft"))
    assert reach.server(efs, "") == ("10.0.1.45", 2049)
    assert reach.server(tls, "") == ("127.0.0.1", 20049)       # efs-utils' stunnel
    lab = parse(f"50 25 0:60 / {DIR}/100 rw - fuse.nfs4 172.31.255.11:/export rw,user_id=0")[0]
    assert reach.server(lab, "") == ("172.31.255.11", 2049)
    assert reach.server(None, "nas:/x") == ("nas", 2049) and reach.server(None, "") is None
    assert soft.options["addr"] == "192.168.1.5"


def test_a_report_refuses_what_is_not_one():
    with pytest.raises(InputError, match="unknown status 'MAYBE'"):
        doctor_report.loads('[{"name": "x", "status": "MAYBE", "detail": ""}]')
    with pytest.raises(InputError, match="doctor report: not a doctor report"):
        doctor_report.loads("ERROR")


def test_the_port_check_against_a_real_listener_and_a_closed_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert reach.connect("127.0.0.1", listener.getsockname()[1], 1.0) == "127.0.0.1"
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
    started = time.monotonic()
    with pytest.raises(probe.ProbeFailed, match="Connection refused"):
        reach.connect("127.0.0.1", port, 1.0)
    assert time.monotonic() - started < 1.0


def write_conf(tmp_path, text: str) -> dict[str, str]:
    conf = tmp_path / "onemetal.conf"
    conf.write_text(text)
    return {"ONEMETAL_CONF": str(conf), "PYTHONPATH": os.path.join(os.getcwd(), "drivers")}


def test_locally_the_cli_reports_text_and_json_and_fails_on_a_fail(tmp_path):
    for ds in ("1", "100"):
        (tmp_path / "ds" / ds).mkdir(parents=True)
    env = write_conf(tmp_path, f'[storage]\ndatastores_dir = "{tmp_path}/ds"\n'
                               'datastore_profiles = ["1=none"]\nsource = "127.0.0.1:/"\n')
    cli = [sys.executable, "-m", "onemetal.cli.onemetal", "doctor", "storage"]
    text = Runner(env=env, timeout=60).run(cli, check=False)
    assert text.returncode == 1
    assert f"FAIL  ds 100 mount: mounted: no ({tmp_path}/ds/100 is on " in text.stdout
    assert "      remedy: run `onemetal mount ensure 100`" in text.stdout
    got = Runner(env=env, timeout=60).run([*cli, "-j"], check=False)
    checks = {c.name: c for c in doctor_report.loads(got.stdout)}
    assert got.returncode == 1 and checks["ds 1 space"].status == "OK"
    assert checks["ds 100 bare mount point"].status == "WARN"
    assert checks["ds 100 server"].detail.startswith("127.0.0.1:2049: ConnectionRefusedError")


HUNG = """\
import sys
from onemetal.lab import hung_fuse
from onemetal import doctor_report
from onemetal.storage import datastores, doctor
hung_fuse.private_namespace()
fd = hung_fuse.mount(sys.argv[1], "127.0.0.1:/export")
print(doctor_report.dumps(doctor.run(datastores.settings())))
hung_fuse.release(fd, sys.argv[1])
"""


def test_a_share_that_never_answers_shows_as_not_answering_within_the_deadline(tmp_path):
    (tmp_path / "ds" / "100").mkdir(parents=True)
    env = write_conf(tmp_path, f'[storage]\ndatastores_dir = "{tmp_path}/ds"\nprofile = "lab"\n'
                               'probe_timeout = 0.5\n')
    started = time.monotonic()
    out = Runner(env=env, timeout=30).run([sys.executable, "-c", HUNG, f"{tmp_path}/ds/100"])
    elapsed = time.monotonic() - started
    checks = {c.name: c for c in doctor_report.loads(out.stdout)}
    assert checks["ds 100 mount"].status == "OK"          # fuse.hung is what "lab" accepts
    assert (checks["ds 100 space"].status, checks["ds 100 space"].detail) == (
        "FAIL", f"{tmp_path}/ds/100: did not answer within 0.5 s (is the NFS server reachable?)")
    print(f"hung share: doctor answered in {elapsed:.2f} s with probe_timeout 0.5 s")
    assert json.loads(out.stdout)


def test_the_docstring_examples_hold():
    import doctest

    for module in (doctor_report, reach):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_an_empty_datastores_directory_fails_where_the_share_should_be_and_warns_on_it(tmp_path):
    """A host that lost the mount of the whole datastores directory sees only the empty directory
    under it: that is a FAIL naming the remedy; an empty share is only a WARN."""
    cfg = StorageConfig(datastores_dir=str(tmp_path), profile="efs", source=EFS)
    [lost] = doctor.run(cfg, parse(ROOT))
    assert (lost.name, lost.status) == ("datastores", "FAIL")
    assert f"onemetal mount ensure {tmp_path}" in lost.remedy and "efs" in lost.detail
    share = RECORDED["efs"].replace(f" {DIR} ", f" {tmp_path} ")
    [empty] = doctor.run(cfg, parse(f"{ROOT}\n{share}"))
    assert (empty.name, empty.status) == ("datastores", "WARN")
    [local] = doctor.run(StorageConfig(datastores_dir=str(tmp_path), profile="none"), parse(ROOT))
    assert local.status == "WARN"
