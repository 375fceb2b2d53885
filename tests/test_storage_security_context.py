"""FILES_DS of the context action: what a datastore path resolves to, and what kind of file it is.

The frontend reads the listed files as oneadmin, who can read oned's files and every
tenant's disks: a symlink in a datastore must not carry one of them into a guest's
context disk, and a FIFO must not hang the action.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from tm_lab import DS, tm, tm_lab

VM_DIR = f"{DS}/0/42"
CONTEXT = "/var/lib/one/vms/42/context.sh"


@pytest.fixture(scope="module")
def lab():
    with tm_lab(16) as lab:
        fe = lab.ssh("one-0")
        fe.run(["mkdir", "-p", "/var/lib/one/vms/42", f"{DS}/2", f"{DS}/0/77"])
        fe.run(["tee", CONTEXT], input="NAME='vm'\n")
        fe.run(["tee", f"{DS}/2/f00d"], input="#!/bin/sh\necho init\n")
        fe.run(["tee", f"{DS}/0/77/disk.0"], input="TENANT-B-DISK\n")
        fe.run(["ln", "-s", "/etc/passwd", f"{DS}/2/out"])
        fe.run(["ln", "-s", "f00d", f"{DS}/2/in"])
        fe.run(["mkfifo", f"{DS}/2/pipe"])
        fe.run(["ln", "-s", "/var/lib/one/vms/42/../../../../etc/hostname", "/var/lib/one/vms/42/up"])
        yield lab


def context(lab, *files: str, disk: str = "disk.3"):
    return tm(lab, "context", CONTEXT, *files, f"one-1:{VM_DIR}/{disk}", "42", "0", check=False)


@pytest.mark.parametrize("word, reason", [
    (f"{DS}/2/out", "/etc/passwd is outside /var/lib/one/datastores"),
    (f"{DS}/2/out:passwd", "/etc/passwd is outside /var/lib/one/datastores"),
    ("/var/lib/one/vms/42/up", "/etc/hostname is outside /var/lib/one/vms/42"),
    (f"{DS}/2/pipe", f"{DS}/2/pipe is not a regular file"),
])
def test_a_file_resolving_outside_or_not_a_regular_file_is_refused(lab, word, reason):
    result = context(lab, word)
    assert result.returncode != 0
    assert "CONTEXT/FILES_DS" in result.stderr and reason in result.stderr, result.stderr
    assert not os.path.lexists(lab.host("one-1").path(f"{VM_DIR}/disk.3"))


def test_a_symlink_within_the_datastores_is_read_through(lab):
    result = context(lab, f"{DS}/2/in:init.sh", disk="disk.4")
    assert result.returncode == 0, result.stderr
    iso = lab.host("one-1").path(f"{VM_DIR}/disk.4")
    text = subprocess.run(["isoinfo", "-i", iso, "-R", "-x", "/init.sh"], capture_output=True,
                          text=True, check=True, timeout=10).stdout
    assert text == "#!/bin/sh\necho init\n"
