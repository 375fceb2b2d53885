"""`onemetal install` runs as root over /var/lib/one, which oneadmin owns: what oneadmin can
plant there (links, directories, manifest entries) must never make root write, chmod or delete
anything outside what it installed. Real files in tmp dirs, run as root like the other tests."""

import json
import os
import shutil
import stat

import pytest
from click.testing import CliRunner

from onemetal import install, safefiles
from onemetal.cli.onemetal import main

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VICTIM_TEXT = "root:x:0:0:root:/root:/bin/bash\n"
# A frontend's oned.conf as far as install edits it: the driver lists it must extend.
ONED = ('LOG = [ SYSTEM = "file" ]\n'
        'TM_MAD = [ EXECUTABLE = "one_tm", ARGUMENTS = "-t 15 -d dummy,qcow2" ]\n'
        'DATASTORE_MAD = [ EXECUTABLE = "one_datastore", ARGUMENTS = "-t 15 -d fs -s qcow2" ]\n')


def layout(tmp_path, **kw) -> install.Layout:
    return install.Layout(prefix=str(tmp_path / "var"), etc=str(tmp_path / "etc"), source=REPO,
                          systemd=str(tmp_path / "systemd"), **kw)


def do_install(tmp_path, **kw):
    return install.install(layout(tmp_path), dry_run=False, out=[],
                           apply_oned_conf=kw.pop("apply_oned_conf", False), **kw)


def cli(tmp_path, *args):
    return CliRunner().invoke(main, [*args, "--prefix", str(tmp_path / "var"), "--etc",
                                     str(tmp_path / "etc"), "--systemd-dir",
                                     str(tmp_path / "systemd")])


@pytest.fixture
def victim(tmp_path):
    """A file outside every install root, standing for /etc/passwd."""
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    os.chmod(path, 0o600)
    return path


def unchanged(path) -> bool:
    return (path.read_text() == VICTIM_TEXT and stat.S_IMODE(os.lstat(path).st_mode) == 0o600)


def call(tmp_path):
    return tmp_path / "var" / "remotes" / "onemetal" / "call"


def temp_files(root) -> list[str]:
    return [os.path.join(b, n) for b, _, names in os.walk(root) for n in names
            if "onemetal-tmp" in n or n.endswith((".onemetal-new", ".tmp"))]


def write_manifest(tmp_path, files):
    manifest = tmp_path / "var" / install.MANIFEST
    data = json.loads(manifest.read_text())
    data["files"] = files
    manifest.write_text(json.dumps(data))


# --- A1: no write through a link ---------------------------------------------------------------

def test_link_at_a_destination_is_refused_before_anything_changes(tmp_path, victim):
    do_install(tmp_path)
    call(tmp_path).unlink()
    call(tmp_path).symlink_to(victim)
    result = cli(tmp_path, "install")
    assert result.exit_code == 1
    assert f"{call(tmp_path)}: is a symlink: refused" in result.output
    assert unchanged(victim) and call(tmp_path).is_symlink()


def test_a_hard_link_at_a_destination_is_replaced_not_written_through(tmp_path, victim):
    do_install(tmp_path)
    call(tmp_path).unlink()
    os.link(victim, call(tmp_path))
    do_install(tmp_path)
    assert unchanged(victim)
    assert os.stat(call(tmp_path)).st_ino != os.stat(victim).st_ino
    assert os.access(call(tmp_path), os.X_OK)


def test_a_link_at_the_old_fixed_temp_names_is_not_written_through(tmp_path, victim):
    do_install(tmp_path)
    call(tmp_path).write_text("stale")  # so that install rewrites it
    planted = [call(tmp_path).with_name("call.onemetal-new"),
               tmp_path / "var" / (install.MANIFEST + ".tmp"),
               tmp_path / "etc" / "oned.conf.onemetal-new"]
    for link in planted:
        link.symlink_to(victim)
    (tmp_path / "etc" / "oned.conf").write_text(ONED)
    os.remove(tmp_path / "var" / install.MANIFEST)  # so that install writes it again
    do_install(tmp_path, apply_oned_conf=True)
    assert unchanged(victim)
    assert all(link.is_symlink() for link in planted)
    assert call(tmp_path).read_text() != "stale"
    assert "BEGIN onemetal" in (tmp_path / "etc" / "oned.conf").read_text()


@pytest.mark.parametrize("component", ["remotes", "remotes/onemetal", "remotes/vnm/ovswitch_vxlan_unicast"])
def test_a_linked_directory_below_the_prefix_is_refused(tmp_path, component):
    do_install(tmp_path)
    outside = tmp_path / "outside-dir"
    planted = tmp_path / "var" / component
    shutil.move(planted, outside)
    planted.symlink_to(outside)
    before = sorted(os.listdir(outside))
    result = cli(tmp_path, "install")
    assert result.exit_code == 1
    assert f"{planted}: is a symlink or not a directory: refused" in result.output
    assert sorted(os.listdir(outside)) == before


def test_a_linked_directory_planted_before_the_first_install_is_refused(tmp_path):
    (tmp_path / "var" / "remotes").mkdir(parents=True)
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (tmp_path / "var" / "remotes" / "vnm").symlink_to(outside)
    with pytest.raises(install.InstallError, match="remotes/vnm: is a symlink or not a directory"):
        do_install(tmp_path)
    assert os.listdir(outside) == []


def test_writes_leave_no_temporary_file(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "oned.conf").write_text(ONED)
    do_install(tmp_path, apply_oned_conf=True)
    install.uninstall(layout(tmp_path), dry_run=False, out=[])
    assert temp_files(tmp_path) == []


# --- A2: uninstall deletes only what install wrote --------------------------------------------

def entries(tmp_path, victim):
    remotes = tmp_path / "var" / "remotes"
    link = remotes / "onemetal" / "evil"
    link.symlink_to(victim)
    return {
        "absolute victim": (str(victim), str(victim)),
        "relative escape": ("../../outside/passwd", "../../outside/passwd"),
        "dotdot escape": (f"{remotes}/../../outside/passwd", f"{remotes}/../../outside/passwd"),
        "link in the tree": (str(link), f"{link}: is a symlink"),
        "host's own unit": (str(tmp_path / "systemd" / "sshd.service"), "sshd.service: not a file"),
    }


@pytest.mark.parametrize("kind", ["absolute victim", "relative escape", "dotdot escape",
                                  "link in the tree", "host's own unit"])
def test_a_planted_manifest_entry_is_refused_before_anything_is_deleted(tmp_path, victim, kind):
    do_install(tmp_path)
    (tmp_path / "systemd" / "sshd.service").write_text("[Unit]\n")
    entry, message = entries(tmp_path, victim)[kind]
    files = install.Layout(str(tmp_path / "var"), str(tmp_path / "etc"), REPO,
                           str(tmp_path / "systemd")).recorded()
    write_manifest(tmp_path, sorted(files) + [entry])
    result = cli(tmp_path, "uninstall")
    assert result.exit_code == 1
    assert message in result.output and "refused" in result.output
    assert unchanged(victim)
    assert (tmp_path / "systemd" / "sshd.service").exists()
    assert call(tmp_path).exists() and (tmp_path / "etc" / "onemetal.conf").exists()  # all or nothing
    assert os.path.islink(tmp_path / "var" / "remotes" / "onemetal" / "evil")


def test_install_too_refuses_a_planted_manifest_entry(tmp_path, victim):
    do_install(tmp_path)
    write_manifest(tmp_path, [str(victim)])
    result = cli(tmp_path, "install")
    assert result.exit_code == 1 and f"{victim}: not below the install roots" in result.output
    assert unchanged(victim)


def test_a_manifest_that_is_a_link_is_refused(tmp_path, victim):
    do_install(tmp_path)
    manifest = tmp_path / "var" / install.MANIFEST
    manifest.unlink()
    manifest.symlink_to(victim)
    result = cli(tmp_path, "uninstall")
    assert result.exit_code == 1 and f"{manifest}: is a symlink" in result.output
    assert unchanged(victim)


def test_a_manifest_entry_in_a_linked_directory_is_refused(tmp_path, victim):
    do_install(tmp_path)
    hooks = tmp_path / "var" / "remotes" / "hooks"
    shutil.rmtree(hooks)
    hooks.symlink_to(victim.parent)
    files = layout(tmp_path).recorded()
    write_manifest(tmp_path, files + [str(hooks / "passwd")])
    result = cli(tmp_path, "uninstall")
    assert result.exit_code == 1 and f"{hooks}: is a symlink or not a directory" in result.output
    assert unchanged(victim) and call(tmp_path).exists()


def test_prune_stops_at_the_root_and_never_leaves_it(tmp_path):
    roots = (str(tmp_path / "root"),)
    deep = tmp_path / "root" / "a" / "b"
    deep.mkdir(parents=True)
    safefiles.prune_empty(str(deep), roots)
    assert not (tmp_path / "root" / "a").exists() and (tmp_path / "root").is_dir()
    outside = tmp_path / "elsewhere" / "empty"
    outside.mkdir(parents=True)
    with pytest.raises(install.InstallError, match="not below the install roots"):
        safefiles.prune_empty(str(outside), roots)
    with pytest.raises(install.InstallError, match="no '..'"):
        safefiles.prune_empty(f"{roots[0]}/../elsewhere/empty", roots)
    assert outside.is_dir()


def test_prune_does_not_follow_a_linked_directory(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    (outside / "empty").mkdir(parents=True)
    (root / "a").symlink_to(outside)
    with pytest.raises(install.InstallError, match="is a symlink or not a directory"):
        safefiles.prune_empty(str(root / "a" / "empty"), (str(root),))
    assert (outside / "empty").is_dir()


# --- A3/A4: atomic writes, modes and owners ---------------------------------------------------

def test_oned_conf_is_replaced_atomically_with_its_mode_and_owner(tmp_path):
    (tmp_path / "etc").mkdir()
    oned = tmp_path / "etc" / "oned.conf"
    oned.write_text(ONED)
    os.chown(oned, 4321, 8765)
    os.chmod(oned, 0o640)
    inodes = [os.stat(oned).st_ino]
    do_install(tmp_path, apply_oned_conf=True)
    inodes.append(os.stat(oned).st_ino)
    assert "BEGIN onemetal" in oned.read_text()
    install.uninstall(layout(tmp_path), dry_run=False, out=[])
    inodes.append(os.stat(oned).st_ino)
    assert oned.read_text() == ONED
    st = os.stat(oned)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 4321, 8765)
    assert len(set(inodes)) == 3  # a new file each time, never rewritten in place


def test_a_linked_oned_conf_is_refused(tmp_path, victim):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "oned.conf").symlink_to(victim)
    with pytest.raises(install.InstallError, match="oned.conf: is a symlink"):
        do_install(tmp_path, apply_oned_conf=True)
    assert unchanged(victim) and not (tmp_path / "var").exists()


def test_a_changed_file_is_replaced_by_a_new_one(tmp_path):
    do_install(tmp_path)
    call(tmp_path).write_text("edited")
    os.chmod(call(tmp_path), 0o777)
    inode = os.stat(call(tmp_path)).st_ino
    do_install(tmp_path)
    assert os.stat(call(tmp_path)).st_ino != inode
    assert stat.S_IMODE(os.stat(call(tmp_path)).st_mode) == 0o755
    with open(os.path.join(REPO, "remotes", "onemetal", "call"), encoding="utf-8") as f:
        assert call(tmp_path).read_text() == f.read()


class Group:
    gr_gid = 4242


def conf_state(tmp_path):
    st = os.stat(tmp_path / "etc" / "onemetal.conf")
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_onemetal_conf_is_readable_by_the_oneadmin_group(tmp_path, monkeypatch):
    monkeypatch.setattr(install.grp, "getgrnam", lambda name: Group if name == "oneadmin" else None)
    do_install(tmp_path)
    assert conf_state(tmp_path) == (0o640, os.geteuid(), 4242)


def test_onemetal_conf_is_world_readable_without_a_oneadmin_group(tmp_path, monkeypatch):
    def missing(name):
        raise KeyError(name)

    monkeypatch.setattr(install.grp, "getgrnam", missing)
    do_install(tmp_path)
    assert conf_state(tmp_path)[0] == 0o644


def test_an_existing_onemetal_conf_is_never_changed(tmp_path):
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "onemetal.conf"
    conf.write_text("[ssh]\n")
    os.chmod(conf, 0o600)
    before = os.stat(conf)
    do_install(tmp_path)
    after = os.stat(conf)
    assert conf.read_text() == "[ssh]\n"
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (
        before.st_ino, before.st_mode, before.st_mtime_ns)


def test_the_manifest_is_replaced_atomically(tmp_path):
    do_install(tmp_path)
    manifest = tmp_path / "var" / install.MANIFEST
    inode = os.stat(manifest).st_ino
    (tmp_path / "var" / "remotes" / "onemetal" / "call").unlink()
    write_manifest(tmp_path, [])  # differs from what install will write
    do_install(tmp_path)
    assert os.stat(manifest).st_ino != inode
    assert str(call(tmp_path)) in json.loads(manifest.read_text())["files"]
    assert temp_files(manifest.parent) == []
