"""The onemetal datastore driver run as oned runs it: over SSH as oneadmin, on a lab host."""

from __future__ import annotations

import json
import os

import pytest
from conftest import installed_lab

from onemetal.lab.lab import HOST_CONF
from onemetal.lab.samples import b64

HOST = "one-0"
DS_DIR = "/var/tmp/datastores"  # /var/tmp is oneadmin-writable on a lab host
BASE = f"{DS_DIR}/100"
STORAGE = f'[storage]\ndatastores_dir = "{DS_DIR}"\nprobe_timeout = 5.0\n'


VMDK = """# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"
RW 6144 FLAT "/var/tmp/import/b.raw" 0
"""


def conf(profile: str) -> str:
    return HOST_CONF + STORAGE + f'profile = "{profile}"\n'


@pytest.fixture(scope="module")
def lab():
    with installed_lab(1) as lab:
        lab.host(HOST).write_conf(conf("none"))
        lab.ssh(HOST).run(["mkdir", "-p", "/var/tmp/import"])
        lab.ssh(HOST).run(["qemu-img", "create", "-q", "-f", "qcow2", "/var/tmp/import/a.qcow2", "20M"])
        lab.ssh(HOST).run(["qemu-img", "create", "-q", "-f", "raw", "/var/tmp/import/b.raw", "3M"])
        # Images that name other files of the machine: a backing file, a data file, vmdk extents
        lab.ssh(HOST).run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                           "/var/tmp/import/a.qcow2", "/var/tmp/import/over.qcow2"])
        lab.ssh(HOST).run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                           "data_file=/var/tmp/import/b.raw", "/var/tmp/import/data.qcow2", "3M"])
        lab.ssh(HOST).run(["tee", "/var/tmp/import/extent.vmdk"], input=VMDK)
        yield lab


def doc(image: str = "", template: str = "", base: str = BASE, extra: str = "") -> str:
    return (f"<DS_DRIVER_ACTION_DATA><DATASTORE><ID>100</ID><BASE_PATH>{base}</BASE_PATH>{extra}"
            f"<TEMPLATE>{template}</TEMPLATE></DATASTORE><IMAGE>{image}</IMAGE>"
            "</DS_DRIVER_ACTION_DATA>")


def ds(lab, action: str, xml: str, image_id: str = "7", old: bool = False):
    """One action as oned 6.8+ runs it (document on stdin), or as older releases (in argv)."""
    script = f"/var/tmp/one/datastore/onemetal/{action}"
    if old:
        return lab.ssh(HOST).run([script, b64(xml), image_id], check=False)
    return lab.ssh(HOST).run([script, image_id], input=b64(xml), check=False)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def info(lab, path: str) -> dict:
    return json.loads(lab.ssh(HOST).run(["qemu-img", "info", "--output=json", path]).stdout)


def files(lab, path: str) -> list[str]:
    found = lab.host(HOST).path(path)
    return sorted(os.listdir(found)) if os.path.isdir(found) else []


def test_cp_keeps_qcow2_converts_to_driver_and_accepts_the_old_argv_form(lab):
    source, fmt = ok(ds(lab, "cp", doc("<PATH>/var/tmp/import/a.qcow2</PATH>"))).split(" ")
    assert os.path.dirname(source) == BASE and len(os.path.basename(source)) == 32
    assert fmt == "qcow2" and info(lab, source)["format"] == "qcow2"
    assert info(lab, source)["virtual-size"] == 20 << 20
    raw = doc("<PATH>/var/tmp/import/b.raw</PATH>", "<DRIVER>qcow2</DRIVER>")
    converted, fmt = ok(ds(lab, "cp", raw, "8", old=True)).split(" ")
    assert fmt == "qcow2" and info(lab, converted)["format"] == "qcow2"
    kept, fmt = ok(ds(lab, "cp", doc("<PATH>/var/tmp/import/b.raw</PATH>"), "9")).split(" ")
    assert fmt == "raw" and info(lab, kept)["format"] == "raw"


def test_mkfs_clone_stat_export_monitor(lab):
    made = ok(ds(lab, "mkfs", doc("<FORMAT>qcow2</FORMAT><SIZE>64</SIZE>"), "10"))
    assert info(lab, made) == {**info(lab, made), "format": "qcow2", "virtual-size": 64 << 20}
    clone, fmt = ok(ds(lab, "clone", doc(f"<PATH>{made}</PATH>"), "11")).split(" ")
    assert clone != made and fmt == "qcow2" and info(lab, clone)["virtual-size"] == 64 << 20
    assert ok(ds(lab, "stat", doc("<PATH>/var/tmp/import/a.qcow2</PATH>"), "-1")) == "20"
    exported = ok(ds(lab, "export", doc(f"<SOURCE>{clone}</SOURCE><SIZE>64</SIZE>")))
    md5 = lab.ssh(HOST).run(["md5sum", clone]).stdout.split()[0]
    assert exported == (f"<IMPORT_INFO><IMPORT_SOURCE><![CDATA[{clone}]]></IMPORT_SOURCE>"
                        f"<MD5><![CDATA[{md5}]]></MD5><SIZE><![CDATA[64]]></SIZE>"
                        "<FORMAT><![CDATA[qcow2]]></FORMAT><DISPOSE>NO</DISPOSE></IMPORT_INFO>")
    lines = dict(line.split("=") for line in ok(ds(lab, "monitor", doc(), "100")).splitlines())
    assert sorted(lines) == ["FREE_MB", "TOTAL_MB", "USED_MB"]
    df = lab.ssh(HOST).run(["df", "-B1M", "-P", BASE]).stdout.splitlines()[-1].split()
    total, used, free = (int(lines[k]) for k in ("TOTAL_MB", "USED_MB", "FREE_MB"))
    assert total == int(df[1]) and 0 < used < total and 0 < free <= total - used + 1  # others write


def test_snapshots_revert_delete_flatten_and_rm(lab):
    src = ok(ds(lab, "mkfs", doc("<FORMAT>qcow2</FORMAT><SIZE>8</SIZE>"), "20"))
    ssh = lab.ssh(HOST)
    ssh.run(["mkdir", f"{src}.snap"])
    ssh.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{src}.snap/0", "8M"])
    ssh.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "backing_fmt=qcow2",
             "-b", f"{src}.snap/0", f"{src}.snap/1"])
    snap = lambda n, more="": doc(f"<SOURCE>{src}</SOURCE><TARGET_SNAPSHOT>{n}</TARGET_SNAPSHOT>{more}",
                                  extra="<TM_MAD>qcow2</TM_MAD>")
    ok(ds(lab, "snap_revert", snap(0)))
    assert info(lab, f"{src}.snap/1")["backing-filename"] == f"{src}.snap/0"
    ssh.run(["cp", f"{src}.snap/0", f"{src}.snap/2"])
    ok(ds(lab, "snap_delete", snap(2)))
    assert files(lab, f"{src}.snap") == ["0", "1"]
    ok(ds(lab, "snap_flatten", snap(1, "<FORMAT>qcow2</FORMAT>")))
    assert "backing-filename" not in info(lab, src) and files(lab, f"{src}.snap") == []
    ok(ds(lab, "rm", doc(f"<SOURCE>{src}</SOURCE>")))
    assert os.path.basename(src) not in files(lab, BASE)
    ok(ds(lab, "rm", doc(f"<SOURCE>{src}</SOURCE>")))  # already gone: as oned retries


def test_raw_snapshots_are_copied_and_moved_as_the_fs_driver_does_and_save_as_only_names(lab):
    src = ok(ds(lab, "mkfs", doc("<FORMAT>raw</FORMAT><SIZE>2</SIZE>"), "21"))
    ssh = lab.ssh(HOST)
    ssh.run(["mkdir", f"{src}.snap"])
    for n in ("0", "1"):
        ssh.run(["dd", "if=/dev/urandom", f"of={src}.snap/{n}", "bs=64k", "count=1", "status=none"])
    sums = lambda *paths: [ssh.run(["md5sum", p]).stdout.split()[0] for p in paths]
    snap = lambda n: doc(f"<SOURCE>{src}</SOURCE><TARGET_SNAPSHOT>{n}</TARGET_SNAPSHOT>"
                         "<FORMAT>raw</FORMAT>", extra="<TM_MAD>shared</TM_MAD>")
    ok(ds(lab, "snap_revert", snap(0)))
    assert sums(src) == sums(f"{src}.snap/0") and files(lab, f"{src}.snap") == ["0", "1"]
    want = sums(f"{src}.snap/1")
    ok(ds(lab, "snap_flatten", snap(1)))
    assert sums(src) == want and not os.path.exists(lab.host(HOST).path(f"{src}.snap"))
    before = files(lab, BASE)
    named = ok(ds(lab, "mkfs", doc("<FORMAT>save_as</FORMAT>"), "22"))
    assert os.path.dirname(named) == BASE and files(lab, BASE) == before


@pytest.mark.parametrize("action, image, field", [
    ("cp", "<PATH>/var/tmp/import/../import/a.qcow2</PATH>", "IMAGE/PATH"),
    ("cp", "<PATH>/var/lib/one/.ssh/authorized_keys</PATH>", "IMAGE/PATH"),  # oned's own files
    ("cp", f"<PATH>{DS_DIR}/101/x</PATH>", "IMAGE/PATH"),
    ("cp", "<PATH>ftp://example.invalid/x</PATH>", "IMAGE/PATH"),
    ("mkfs", "<FORMAT>vmdk</FORMAT><SIZE>8</SIZE>", "IMAGE/FORMAT"),
    ("mkfs", "<FORMAT>raw</FORMAT>", "IMAGE/SIZE"),
    ("mkfs", "<FORMAT>raw</FORMAT><SIZE>-5</SIZE>", "IMAGE/SIZE"),
    ("mkfs", "<FORMAT>raw</FORMAT><SIZE>16000000</SIZE>", "IMAGE/SIZE"),
    ("rm", f"<SOURCE>{DS_DIR}/101/abc</SOURCE>", "IMAGE/SOURCE"),
    ("rm", f"<SOURCE>{BASE}/../101/abc</SOURCE>", "IMAGE/SOURCE"),
    ("snap_delete", f"<SOURCE>{BASE}/abc</SOURCE><TARGET_SNAPSHOT>x</TARGET_SNAPSHOT>",
     "IMAGE/TARGET_SNAPSHOT"),
    ("clone", "<PATH>/etc/passwd</PATH>", "IMAGE/PATH"),
])
def test_bad_input_names_the_field_and_changes_nothing(lab, action, image, field):
    before = files(lab, BASE)
    result = ds(lab, action, doc(image))
    assert result.returncode != 0
    assert f"ERROR: {action}: {field}: " in result.stderr, result.stderr
    assert files(lab, BASE) == before


@pytest.mark.parametrize("name, named", [("over.qcow2", "a.qcow2"), ("data.qcow2", "b.raw"),
                                         ("extent.vmdk", "b.raw")])
def test_an_image_naming_other_files_is_refused_and_removed(lab, name, named):
    before = files(lab, BASE)
    result = ds(lab, "cp", doc(f"<PATH>/var/tmp/import/{name}</PATH>", "<DRIVER>qcow2</DRIVER>"))
    assert result.returncode == 1
    assert f"ERROR: cp: IMAGE/PATH: the image names other files (/var/tmp/import/{named})" \
        in result.stderr, result.stderr
    assert files(lab, BASE) == before


def test_a_non_numeric_id_or_a_base_path_outside_the_datastores_is_refused(lab):
    assert "ID: " in ds(lab, "mkfs", doc("<FORMAT>raw</FORMAT><SIZE>1</SIZE>"), "7;rm").stderr
    outside = ds(lab, "mkfs", doc("<FORMAT>raw</FORMAT><SIZE>1</SIZE>", base="/var/tmp/x"))
    assert "DATASTORE/BASE_PATH: /var/tmp/x is outside" in outside.stderr
    assert not os.path.exists(lab.host(HOST).path("/var/tmp/x"))


CREATES = [
    ("cp", "<PATH>/var/tmp/import/a.qcow2</PATH>"),
    ("mkfs", "<FORMAT>raw</FORMAT><SIZE>4</SIZE>"),
    ("clone", "<PATH>{image}</PATH>"),
    ("monitor", ""),
]
CHANGES = ["rm", "snap_delete", "snap_revert", "snap_flatten"]


def tree(lab, path: str) -> list[tuple[str, int]]:
    root = lab.host(HOST).path(path)
    return sorted((os.path.relpath(os.path.join(top, f), root), os.stat(os.path.join(top, f)).st_mtime_ns)
                  for top, _dirs, names in os.walk(root) for f in names)


@pytest.mark.parametrize("profile", ["lab", "efs"])
def test_the_write_gate_refuses_every_writing_action_without_a_mount(lab, profile):
    empty, full = f"{DS_DIR}/201", f"{DS_DIR}/202"
    lab.ssh(HOST).run(["mkdir", "-p", empty])
    image = ok(ds(lab, "mkfs", doc("<FORMAT>qcow2</FORMAT><SIZE>1</SIZE>", base=full), "30"))
    lab.ssh(HOST).run(["mkdir", "-p", f"{image}.snap"])
    lab.ssh(HOST).run(["cp", image, f"{image}.snap/0"])
    before = tree(lab, full)
    lab.host(HOST).write_conf(conf(profile))
    try:
        runs = [(a, ds(lab, a, doc(i.format(image=image), base=empty)), empty) for a, i in CREATES]
        snap = f"<SOURCE>{image}</SOURCE><TARGET_SNAPSHOT>0</TARGET_SNAPSHOT><FORMAT>qcow2</FORMAT>"
        runs += [(a, ds(lab, a, doc(snap, base=full)), image) for a in CHANGES]
        for action, result, path in runs:
            assert result.returncode != 0, action
            first = result.stderr.splitlines()[0]
            assert first.startswith(f"ERROR: {action}: {path}"), first  # names the path
            assert f"refusing to write ({profile} policy)" in first
        assert files(lab, empty) == [] and tree(lab, full) == before
    finally:
        lab.host(HOST).write_conf(conf("none"))
