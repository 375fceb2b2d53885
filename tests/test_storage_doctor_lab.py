"""`onemetal doctor storage` on a lab host, over SSH as oneadmin and from the frontend CLI: a tmpfs
mounted where the share should be, an unmounted directory (and its immutable flag), the NFS port
of a real TCP listener in another host, a closed port, an address nobody answers for, and a
share that never answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

from conftest import REPO, installed_lab
from onemetal import doctor_report
from onemetal.lab import Lab
from onemetal.lab.hung_fuse import hold_script
from onemetal.lab.host import ONEADMIN_ID
from onemetal.lab.lab import HOST_CONF

DIR = "/var/lib/one/datastores"
# A TCP listener on the NFS port for at most 120 s, detached so the command returns; prints its pid.
LISTEN = """\
import os, socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 2049)); s.listen(16)
pid = os.fork()
if pid:
    print(pid); os._exit(0)
os.setsid()
null = os.open("/dev/null", os.O_RDWR)
for std in (0, 1, 2):
    os.dup2(null, std)
s.settimeout(1.0)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        s.accept()[0].close()
    except OSError:
        pass
"""


def configure(lab: Lab, source: str) -> None:
    lab.host("one-0").write_conf(HOST_CONF + f'[storage]\ndatastores_dir = "{DIR}"\nprofile = "lab"\n'
                                             f'source = "{source}"\nprobe_timeout = 1.0\n')


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with installed_lab(2) as lab:
        host = lab.host("one-0")
        for ds in ("100", "101"):
            os.makedirs(host.path(f"{DIR}/{ds}"))
            os.chown(host.path(f"{DIR}/{ds}"), ONEADMIN_ID, ONEADMIN_ID)
        host.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", f"{DIR}/100"])
        listener = int(lab.host("one-1").run(["python3", "-c", LISTEN]).stdout)
        configure(lab, f"{lab.host('one-1').address}:/export")
        try:
            yield lab
        finally:
            os.kill(listener, signal.SIGKILL)


def doctor(lab: Lab) -> dict[str, doctor_report.Check]:
    return {c.name: c for c in doctor_report.from_host(lab.ssh("one-0"), "storage-doctor")}


def test_over_ssh_a_tmpfs_is_the_wrong_file_system_and_a_bare_dir_is_not_mounted(lab):
    checks = doctor(lab)
    wrong, bare = checks["ds 100 mount"], checks["ds 101 mount"]
    assert wrong.status == "FAIL" and wrong.detail.startswith("mounted: yes, wrong file system: ")
    assert "(tmpfs from tmpfs), not an NFS share (want fuse.*)" in wrong.detail
    assert wrong.remedy == f"umount {DIR}/100, then run `onemetal mount ensure 100`"
    assert (bare.status, bare.remedy) == ("FAIL", "run `onemetal mount ensure 101`")
    assert bare.detail.startswith(f"mounted: no ({DIR}/101 is on ")
    assert (checks["ds 101 bare mount point"].status, checks["ds 101 bare mount point"].remedy) == (
        "WARN", f"as root, while unmounted: chattr +i {DIR}/101")


def test_an_immutable_bare_mount_point_is_ok(lab):
    path = lab.host("one-0").path(f"{DIR}/101")
    subprocess.run(["chattr", "+i", path], check=True, timeout=10)
    try:
        check = doctor(lab)["ds 101 bare mount point"]
    finally:
        subprocess.run(["chattr", "-i", path], check=True, timeout=10)
    assert (check.status, check.detail) == (
        "OK", f"immutable: yes ({DIR}/101: writes fail while the share is not mounted)")


def test_the_nfs_port_of_a_real_listener_is_reachable_and_a_closed_one_is_not(lab):
    server = lab.host("one-1").address
    check = doctor(lab)["ds 101 server"]
    assert (check.status, check.detail) == ("OK", f"{server} port 2049 reachable ({server})")
    configure(lab, f"{lab.host('one-0').address}:/export")  # nothing listens on one-0's 2049
    try:
        check = doctor(lab)["ds 101 server"]
    finally:
        configure(lab, f"{server}:/export")
    assert check.status == "FAIL" and "Connection refused" in check.detail


def test_an_address_nobody_answers_for_fails_within_the_timeout(lab):
    configure(lab, f"{lab.network.network_address + 250}:/export")
    started = time.monotonic()
    try:
        check = doctor(lab)["ds 101 server"]
    finally:
        configure(lab, f"{lab.host('one-1').address}:/export")
    elapsed = time.monotonic() - started
    assert (check.status, check.detail) == (
        "FAIL", f"{lab.network.network_address + 250} port 2049: no answer within 1 s")
    print(f"unreachable server: the doctor over SSH took {elapsed:.2f} s (connect timeout 1 s)")


def test_a_hung_share_on_the_host_shows_as_not_answering(lab):
    host, mount_point = lab.host("one-0"), f"{DIR}/102"
    os.makedirs(host.path(mount_point))
    script = hold_script(os.path.join(REPO, "drivers"), mount_point,
                         f"{lab.host('one-1').address}:/export", 60)
    holder = int(host.run(["python3", "-c", script]).stdout)
    try:
        checks = doctor(lab)
    finally:
        os.kill(holder, signal.SIGKILL)
        host.run(["umount", "-l", mount_point], check=False)
    assert checks["ds 102 mount"].status == "OK"
    assert (checks["ds 102 space"].status, checks["ds 102 space"].detail) == (
        "FAIL", f"{mount_point}: did not answer within 1 s (is the NFS server reachable?)")
    assert checks["ds 102 bare mount point"].detail.startswith("immutable: unknown")


def test_the_frontend_cli_runs_it_on_the_host_and_prints_json(lab):
    cli = [sys.executable, "-m", "onemetal.cli.onemetal", "doctor", "storage", "--host", "one-0"]
    got = lab.frontend_cli().run([*cli, "-j"], check=False)
    assert got.returncode == 1, got.stderr
    statuses = {c["name"]: c["status"] for c in json.loads(got.stdout)}
    assert statuses["ds 100 mount"] == "FAIL" and statuses["ds 101 server"] == "OK"
    text = lab.frontend_cli().run(cli, check=False)
    assert text.returncode == 1 and "FAIL  ds 100 mount: mounted: yes, wrong file system" in text.stdout
