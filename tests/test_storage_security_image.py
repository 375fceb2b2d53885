"""Untrusted image files: a raw disk a guest rewrote with a qcow2 header, and qemu-img's limits.

The guest of a VM writes every byte of a raw disk, so it can give it a qcow2 header
whose backing file is another tenant's disk. DS clone, TM clone and TM cpds must not
read through such a header; qemu-img info of an untrusted file runs under prlimit.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from test_storage_ds import doc, ds
from tm_lab import DS, IMAGE, TM, tm, tm_lab

VICTIM = f"{DS}/0/99/disk.0"  # another tenant's VM disk, which oneadmin can read
EVIL = f"{DS}/1/e0e0"  # a raw image whose guest wrote a qcow2 header naming VICTIM


def header_naming(lab, path: str, target: str) -> None:
    lab.ssh("one-0").run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", target,
                          path])


@pytest.fixture(scope="module")
def lab():
    with tm_lab(16) as lab:
        fe = lab.ssh("one-0")
        fe.run(["mkdir", "-p", f"{DS}/0/99", f"{DS}/0/51"])
        fe.run(["tee", VICTIM], input="TENANT-B-SECRET\n" * 4096)
        header_naming(lab, EVIL, VICTIM)
        header_naming(lab, f"{DS}/0/51/disk.1", VICTIM)  # VM 51's volatile raw disk, rewritten
        yield lab


def listing(lab, path: str) -> list[str]:
    found = lab.host("one-0").path(path)
    return sorted(os.listdir(found)) if os.path.isdir(found) else []


def test_ds_clone_of_an_image_naming_another_disk_is_refused(lab):
    before = listing(lab, f"{DS}/1")
    for driver in ("qcow2", ""):
        result = ds(lab, "clone", doc(f"<PATH>{EVIL}</PATH>", f"<DRIVER>{driver}</DRIVER>",
                                      base=f"{DS}/1", extra="<TM_MAD>qcow2</TM_MAD>"))
        assert result.returncode != 0
        assert f"ERROR: clone: IMAGE/PATH: the image names other files ({VICTIM})" \
            in result.stderr, result.stderr
    assert listing(lab, f"{DS}/1") == before


def test_tm_clone_of_an_image_naming_another_disk_is_refused(lab):
    result = tm(lab, "clone", f"one-0:{EVIL}", f"one-1:{DS}/0/50/disk.0", "50", "1", check=False)
    assert result.returncode != 0
    assert f"SRC: {EVIL} names {VICTIM}, a file it may not read through" in result.stderr, \
        result.stderr
    assert listing(lab, f"{DS}/0/50") == []


def test_cpds_of_a_rewritten_raw_disk_is_refused_and_of_a_clone_works(lab):
    saved = f"{DS}/1/5a5a"
    result = tm(lab, "cpds", f"one-1:{DS}/0/51/disk.1", f"one-0:{saved}", "-1", "51", "1",
                check=False)
    assert result.returncode != 0
    assert f"names {VICTIM}, a file it may not read through" in result.stderr, result.stderr
    assert not os.path.lexists(lab.host("one-0").path(saved))
    tm(lab, "clone", f"one-0:{IMAGE}", f"one-1:{DS}/0/52/disk.0", "52", "1")
    tm(lab, "cpds", f"one-1:{DS}/0/52/disk.0", f"one-0:{saved}", "-1", "52", "1")
    assert os.path.isfile(lab.host("one-0").path(saved))


def _limits_of_qemu_img_reading(path: str, deadline: float, ended: list) -> str:
    while time.monotonic() < deadline and not ended:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if argv[0].endswith(b"qemu-img") and path.encode() in argv:
                    with open(f"/proc/{pid}/limits") as f:
                        return f.read()
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no qemu-img reading {path} appeared: {ended}")


def test_qemu_img_info_of_an_untrusted_file_runs_with_bounded_memory_and_cpu(lab):
    # A FIFO holds qemu-img in its open() until a writer comes: long enough to read its limits.
    fifo = f"{DS}/1/f1f0"
    os.mkfifo(lab.host("one-0").path(fifo))
    os.chown(lab.host("one-0").path(fifo), 9869, 9869)
    results: list = []
    clone = threading.Thread(target=lambda: results.append(
        tm(lab, "clone", f"one-0:{fifo}", f"one-1:{DS}/0/53/disk.0", "53", "1", check=False)))
    clone.start()
    try:
        limits = _limits_of_qemu_img_reading(fifo, time.monotonic() + 60, results)
    finally:
        try:  # a writer that closes at once: qemu-img reads an empty file and fails
            os.close(os.open(lab.host("one-0").path(fifo), os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader (left already)
        clone.join(60)
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert rows["Max address space"][:2] == [str(1 << 30)] * 2, limits
    assert rows["Max cpu time"][:2] == ["30", "30"], limits
    assert results and results[0].returncode != 0
