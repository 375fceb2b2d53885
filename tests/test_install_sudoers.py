"""`onemetal install --sudoers-dir DIR` and `install.install_sudoers`: root 0440, atomic, and only
what visudo accepted (a broken sudoers.d file disables sudo on the host). Needs visudo (sudo)."""

import json
import os
import shutil
import stat

import pytest
from click.testing import CliRunner

from onemetal import install
from onemetal.cli.onemetal import main
from onemetal.run import Runner

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GOOD = "oneadmin ALL=(root) NOPASSWD: /usr/sbin/sysctl -q -w net.ipv4.ip_forward=1\n"
BROKEN = "oneadmin ALL=(root NOPASSWD /usr/sbin/sysctl\n"

pytestmark = pytest.mark.skipif(shutil.which("visudo") is None,
                                reason="visudo missing: install the Debian package sudo")


def source(tmp_path, files=None):
    """A copy of the source tree whose etc/sudoers.d holds `files` (default: the shipped ones,
    or one valid fragment while the repository has none)."""
    src = tmp_path / "src"
    for part in ("remotes", "hooks", "etc"):
        shutil.copytree(os.path.join(REPO, part), src / part, symlinks=True,
                        ignore=shutil.ignore_patterns("sudoers.d"))
    shipped = os.path.join(REPO, install.SUDOERS)
    sudoers = src / install.SUDOERS
    if files is None and os.path.isdir(shipped):
        shutil.copytree(shipped, sudoers)
    else:
        sudoers.mkdir()
        for name, text in (files or {"onemetal": GOOD}).items():
            (sudoers / name).write_text(text)
    return src


def args(tmp_path, command, *extra):
    return [command, "--prefix", str(tmp_path / "var"), "--etc", str(tmp_path / "etc"),
            "--systemd-dir", str(tmp_path / "systemd"), *extra]


def cli(tmp_path, command, *extra):
    return CliRunner().invoke(main, args(tmp_path, command, *extra))


def sudoers_dir(tmp_path):
    path = tmp_path / "sudoers.d"
    path.mkdir(exist_ok=True)
    (path / "opennebula").write_text("# the host's own\n")  # must survive everything below
    return path


def test_install_puts_the_fragments_in_as_root_0440_and_uninstall_removes_only_them(tmp_path):
    src, dest = source(tmp_path), sudoers_dir(tmp_path)
    result = cli(tmp_path, "install", "--source", str(src), "--sudoers-dir", str(dest))
    assert result.exit_code == 0, result.output
    names = sorted(os.listdir(src / install.SUDOERS))
    assert sorted(os.listdir(dest)) == sorted(names + ["opennebula"])
    for name in names:
        st = os.stat(dest / name)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o440, 0, 0)
        assert (dest / name).read_bytes() == (src / install.SUDOERS / name).read_bytes()
        assert f"+ {dest / name}" in result.output
    manifest = json.loads((tmp_path / "var" / install.MANIFEST).read_text())
    assert {str(dest / n) for n in names} <= set(manifest["files"])
    again = cli(tmp_path, "install", "--source", str(src), "--sudoers-dir", str(dest))
    assert "converged, nothing to do" in again.output
    result = cli(tmp_path, "uninstall", "--sudoers-dir", str(dest))
    assert result.exit_code == 0, result.output
    assert os.listdir(dest) == ["opennebula"]


def test_uninstall_without_the_sudoers_dir_refuses_and_deletes_nothing(tmp_path):
    src, dest = source(tmp_path), sudoers_dir(tmp_path)
    assert cli(tmp_path, "install", "--source", str(src), "--sudoers-dir", str(dest)).exit_code == 0
    result = cli(tmp_path, "uninstall")
    assert result.exit_code == 1 and "--sudoers-dir" in result.output
    assert f"{dest}{os.sep}" in result.output and "refused" in result.output
    assert len(os.listdir(dest)) > 1 and (tmp_path / "var" / install.MANIFEST).exists()


def test_a_broken_fragment_is_refused_and_nothing_is_written(tmp_path):
    src, dest = source(tmp_path, {"onemetal": GOOD, "onemetal-nat": BROKEN}), sudoers_dir(tmp_path)
    result = cli(tmp_path, "install", "--source", str(src), "--sudoers-dir", str(dest))
    assert result.exit_code == 1
    assert f"{dest / 'onemetal-nat'}: rejected by visudo, not installed" in result.output
    assert "syntax error" in result.output
    assert os.listdir(dest) == ["opennebula"]  # not even the good one, nor a temporary file
    assert not (tmp_path / "var").exists() and not (tmp_path / "etc").exists()


def test_dry_run_writes_nothing_and_still_checks(tmp_path):
    src = source(tmp_path)
    dest = tmp_path / "sudoers.d"
    result = cli(tmp_path, "install", "--dry-run", "--source", str(src), "--sudoers-dir", str(dest))
    assert result.exit_code == 0, result.output
    assert f"+ {dest / 'onemetal'}" in result.output
    assert not dest.exists() and not (tmp_path / "var").exists()
    broken = source(tmp_path / "b", {"onemetal": BROKEN})
    out: list[str] = []
    with pytest.raises(install.InstallError, match="rejected by visudo"):
        install.install_sudoers(str(broken / install.SUDOERS), str(dest), out, dry_run=True)
    assert not dest.exists()


@pytest.mark.parametrize("name", ["onemetal.conf", "onemetal~", "README"])
def test_a_name_sudo_would_skip_or_uninstall_could_not_tell_is_refused(tmp_path, name):
    src, dest = source(tmp_path, {name: GOOD}), sudoers_dir(tmp_path)
    with pytest.raises(install.InstallError, match=name) as err:
        install.install_sudoers(str(src / install.SUDOERS), str(dest), [])
    assert str(src / install.SUDOERS / name) in str(err.value)
    assert os.listdir(dest) == ["opennebula"]


def test_install_sudoers_for_a_host_is_idempotent_and_returns_what_it_owns(tmp_path):
    src, dest = source(tmp_path, {"onemetal": GOOD}), tmp_path / "host" / "sudoers.d"
    out: list[str] = []
    assert install.install_sudoers(str(src / install.SUDOERS), str(dest), out) == [
        str(dest / "onemetal")]
    assert stat.S_IMODE(os.stat(dest / "onemetal").st_mode) == 0o440
    before = os.stat(dest / "onemetal").st_mtime_ns
    install.install_sudoers(str(src / install.SUDOERS), str(dest), out)
    assert "converged, nothing to do" in out[-1]
    assert os.stat(dest / "onemetal").st_mtime_ns == before
    (src / install.SUDOERS / "onemetal").write_text(GOOD + "# changed\n")
    install.install_sudoers(str(src / install.SUDOERS), str(dest), out)
    assert (dest / "onemetal").read_text().endswith("# changed\n")
    assert stat.S_IMODE(os.stat(dest / "onemetal").st_mode) == 0o440


def test_a_link_in_the_sudoers_dir_is_refused(tmp_path):
    src, dest = source(tmp_path, {"onemetal": GOOD}), sudoers_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (dest / "onemetal").symlink_to(victim)
    with pytest.raises(install.InstallError, match="onemetal: is a symlink"):
        install.install_sudoers(str(src / install.SUDOERS), str(dest), [])
    assert victim.read_text() == "keep\n" and stat.S_IMODE(os.stat(victim).st_mode) == 0o644


def test_visudo_missing_is_one_clear_line(tmp_path, monkeypatch):
    src, dest = source(tmp_path, {"onemetal": GOOD}), sudoers_dir(tmp_path)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    with pytest.raises(install.InstallError) as err:
        install.install_sudoers(str(src / install.SUDOERS), str(dest), [],
                                runner=Runner(env={"PATH": str(empty)}))
    assert str(err.value) == "visudo missing: install the Debian package sudo"
    assert os.listdir(dest) == ["opennebula"]
    monkeypatch.setenv("PATH", str(empty))
    result = cli(tmp_path, "install", "--source", str(src), "--sudoers-dir", str(dest))
    assert result.exit_code == 1
    assert result.output == "onemetal: visudo missing: install the Debian package sudo\n"
