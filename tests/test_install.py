import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from onemetal import install
from onemetal.cli.onemetal import main
from onemetal.lab import samples

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# A frontend's oned.conf as far as install edits it: the driver lists it must extend.
ONED = ('LOG = [ SYSTEM = "file" ]\n'
        'TM_MAD = [ EXECUTABLE = "one_tm", ARGUMENTS = "-t 15 -d dummy,qcow2" ]\n'
        'DATASTORE_MAD = [ EXECUTABLE = "one_datastore", ARGUMENTS = "-t 15 -d fs -s qcow2" ]\n')


def layout(tmp_path, source=REPO) -> install.Layout:
    return install.Layout(prefix=str(tmp_path / "var"), etc=str(tmp_path / "etc"), source=source,
                          systemd=str(tmp_path / "systemd"))


def cli(*args):
    args = list(args)
    if args[0] in ("install", "uninstall") and "--systemd-dir" not in args:
        # Never the machine's own /etc/systemd/system: the units go where the prefix is.
        prefix = args[args.index("--prefix") + 1]
        args += ["--systemd-dir", os.path.join(os.path.dirname(prefix), "systemd")]
    return CliRunner().invoke(main, args)


def snapshot(root) -> dict[str, tuple[int, int]]:
    out = {}
    for base, _, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(base, name))
            out[os.path.join(base, name)] = (st.st_mtime_ns, st.st_mode)
    return out


def test_install_carries_the_core_and_is_idempotent(tmp_path):
    result = cli("install", "--prefix", str(tmp_path / "var"), "--etc", str(tmp_path / "etc"))
    assert result.exit_code == 0, result.output
    remotes = tmp_path / "var" / "remotes"
    call = remotes / "onemetal" / "call"
    assert os.access(call, os.X_OK)
    assert (remotes / "onemetal" / "lib" / "onemetal" / "opennebula" / "vm.py").is_file()
    assert not (remotes / "onemetal" / "lib" / "onemetal" / "lab" / "__pycache__").exists()
    assert (tmp_path / "etc" / "onemetal.conf").is_file()
    before = snapshot(tmp_path)
    again = cli("install", "--prefix", str(tmp_path / "var"), "--etc", str(tmp_path / "etc"))
    assert "converged, nothing to do" in again.output
    assert snapshot(tmp_path) == before


def test_installed_remote_runs_under_the_system_python_outside_the_checkout(tmp_path):
    install.install(layout(tmp_path), dry_run=False, apply_oned_conf=False, out=[])
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "var" / "remotes", moved)  # as onehost sync puts it on a host
    xml = samples.vnm_vm_xml(7, "one-1", [samples.SampleNic(0, "192.168.0.9", "02:00:c0:a8:00:09")])
    proc = subprocess.run([str(moved / "onemetal" / "call"), "describe-vm"], cwd="/",
                          input=samples.b64(xml) + "\n", capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert '"ip": "192.168.0.9"' in proc.stdout


def test_driver_actions_probe_and_hook_are_installed_as_oned_expects(tmp_path):
    install.install(layout(tmp_path), dry_run=False, apply_oned_conf=False, out=[])
    remotes = tmp_path / "var" / "remotes"
    for action in ("pre", "post", "clean", "update_sg", "update_nic", "vnet_create", "vnet_delete"):
        path = remotes / "vnm" / "ovswitch_vxlan_unicast" / action
        assert path.is_file() and not path.is_symlink() and os.access(path, os.X_OK), action
    assert os.access(remotes / "im" / "kvm-probes.d" / "host" / "system" / "onemetal_mesh", os.X_OK)
    hook = remotes / "hooks" / "onemetal" / "mesh-sync"
    # pyone is only where onemetal is installed: the hook names that interpreter.
    assert hook.read_text().splitlines()[0] == f"#!{sys.executable}"
    # Run as oned's hook manager would, on a frontend without a session file: one clear line.
    proc = subprocess.run([str(hook)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "ONE_AUTH": str(tmp_path / "none")})
    assert proc.returncode == 1 and proc.stderr.startswith("onemetal: ONE_AUTH=")
    assert "Traceback" not in proc.stderr


def test_sync_units_run_the_installed_commands(tmp_path):
    install.install(layout(tmp_path), dry_run=False, apply_oned_conf=False, out=[])
    units = tmp_path / "systemd"
    bin_dir = os.path.dirname(sys.executable)
    assert f"ExecStart={bin_dir}/onenat sync" in (units / "onemetal-nat-sync.service").read_text()
    assert f"ExecStart={bin_dir}/onemetal mesh sync" in (
        units / "onemetal-mesh-sync.service").read_text()
    assert "OnUnitActiveSec=10min" in (units / "onemetal-nat-sync.timer").read_text()
    assert os.access(os.path.join(bin_dir, "onenat"), os.X_OK)
    install.uninstall(layout(tmp_path), dry_run=False, out=[])
    assert not (units / "onemetal-nat-sync.service").exists()


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    result = cli("install", "--dry-run", "--prefix", str(tmp_path / "var"), "--etc", str(tmp_path / "etc"))
    assert result.exit_code == 0
    assert "+ " + str(tmp_path / "var" / "remotes" / "onemetal" / "call") in result.output
    assert not (tmp_path / "var").exists() and not (tmp_path / "etc").exists()


def test_uninstall_reverses_install_but_keeps_an_edited_conf(tmp_path):
    install.install(layout(tmp_path), dry_run=False, apply_oned_conf=False, out=[])
    conf = tmp_path / "etc" / "onemetal.conf"
    conf.write_text(conf.read_text() + "\n# site tuning\n")
    (tmp_path / "var" / "remotes" / "vmm").mkdir(exist_ok=True)  # holds vmm/onemetal too
    (tmp_path / "var" / "remotes" / "vmm" / "stock").write_text("not ours")
    result = cli("uninstall", "--prefix", str(tmp_path / "var"), "--etc", str(tmp_path / "etc"))
    assert result.exit_code == 0, result.output
    assert "kept: it differs" in result.output
    left = sorted(os.path.relpath(p, tmp_path) for p in snapshot(tmp_path))
    assert left == ["etc/onemetal.conf", "var/remotes/vmm/stock"]


def test_unedited_conf_is_removed_by_uninstall(tmp_path):
    install.install(layout(tmp_path), dry_run=False, apply_oned_conf=False, out=[])
    install.uninstall(layout(tmp_path), dry_run=False, out=[])
    assert not (tmp_path / "etc" / "onemetal.conf").exists()


def test_oned_conf_fragments_are_applied_once_and_removed(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__"),
                    symlinks=True)
    (source / "etc" / "oned.d" / "vnm.conf").write_text(
        'VN_MAD_CONF = [ NAME = "ovswitch_vxlan_unicast", BRIDGE_TYPE = "openvswitch" ]\n')
    (tmp_path / "etc").mkdir()
    oned = tmp_path / "etc" / "oned.conf"
    oned.write_text(ONED)
    for _ in range(2):
        install.install(layout(tmp_path, str(source)), dry_run=False, apply_oned_conf=True, out=[])
        assert oned.read_text().count('NAME = "ovswitch_vxlan_unicast"') == 1
    install.uninstall(layout(tmp_path, str(source)), dry_run=False, out=[])
    assert oned.read_text() == ONED


def test_apply_without_oned_conf_fails_and_changes_nothing(tmp_path):
    result = cli("install", "--apply-oned-conf", "--prefix", str(tmp_path / "var"),
                 "--etc", str(tmp_path / "etc"))
    assert result.exit_code == 1
    assert "oned.conf: not found" in result.output
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("tool", ["onemetal", "onenat"])
def test_thin_executables_in_bin_start(tool):
    proc = subprocess.run([os.path.join(REPO, "bin", tool), "--help"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and "Usage:" in proc.stdout
