"""bench/stock_tree.py: the stock ovswitch_vxlan tree laid out as install.sh puts it on a host."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))

import stock_tree  # noqa: E402

MIRROR = "/work/.mirror/OpenNebula+one/repo"
SETUP = "# %%RUBYGEMS_SETUP_BEGIN%%\nrequire 'load_opennebula_paths'\n# %%RUBYGEMS_SETUP_END%%\n"


def write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


@pytest.fixture
def checkout(tmp_path):
    """The shape of an OpenNebula checkout, with stand-in files."""
    remotes = tmp_path / "one" / "src" / "vnm_mad" / "remotes"
    write(str(remotes / "lib" / "vnmmad.rb"), "require 'rexml/document'\nrequire 'CommandManager'\n")
    write(str(remotes / "OpenNebulaNetwork.conf"), ":vxlan_mc: 239.0.0.0\n")
    for driver in stock_tree.DRIVERS:
        write(str(remotes / driver / "pre"), f"#!/usr/bin/env ruby\n{SETUP}require 'vnmmad'\n",
              0o755)
        write(str(remotes / driver / "pre.d" / ".gitignore"), "")
    ruby = tmp_path / "one" / "src" / "mad" / "ruby"
    write(str(ruby / "CommandManager.rb"), "require_relative 'DriverLogger'\n")
    write(str(ruby / "DriverLogger.rb"), "require 'English'\n")
    write(str(ruby / "OpenNebulaDriver.rb"), "# a MAD's, not a remote's\n")
    return str(tmp_path / "one")


def test_lays_out_the_driver_its_required_framework_files_and_empty_hook_dirs(checkout, tmp_path):
    dest = str(tmp_path / "tree")
    stock_tree.build(checkout, dest)
    files = sorted(os.path.relpath(os.path.join(b, n), dest) + ("/" if n in dirs else "")
                   for b, dirs, names in os.walk(dest) for n in names + dirs)
    assert "CommandManager.rb" in files and "DriverLogger.rb" in files  # required, transitively
    assert "OpenNebulaDriver.rb" not in files                          # not required
    assert "vnm/vnmmad.rb" in files and "etc/vnm/OpenNebulaNetwork.conf" in files
    for driver in stock_tree.DRIVERS:
        assert {f"vnm/{driver}/pre", f"vnm/{driver}/post.d/", f"vnm/{driver}/clean.d/"} <= set(files)
        assert f"vnm/{driver}/pre.d/.gitignore" not in files
    pre = os.path.join(dest, "vnm", "ovswitch_vxlan", "pre")
    assert os.stat(pre).st_mode & stat.S_IXUSR
    with open(pre, encoding="utf-8") as f:
        text = f.read()
    assert "load_opennebula_paths" not in text and "%%RUBYGEMS_SETUP_END%%" in text


def test_refuses_what_is_not_a_checkout_and_an_existing_destination(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not an OpenNebula source checkout"):
        stock_tree.build(str(tmp_path), str(tmp_path / "tree"))
    assert not (tmp_path / "tree").exists()
    with pytest.raises(SystemExit):
        stock_tree.main([str(tmp_path), str(tmp_path)])
    assert "exists" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir(MIRROR) or not shutil.which("ruby"),
                    reason="needs OpenNebula's source (git mirror) and ruby")
def test_the_tree_built_from_opennebula_loads_its_driver_under_debians_ruby(tmp_path):
    dest = str(tmp_path / "tree")
    assert stock_tree.main(["--git", MIRROR, "--ref", "HEAD", dest]) == 0
    script = ("$LOAD_PATH << File.join(ARGV[0], 'vnm') << File.join(ARGV[0], 'vnm', 'ovswitch_vxlan');"
              "require 'OpenvSwitchVXLAN'; puts OpenvSwitchVXLAN::DRIVER")
    out = subprocess.run(["ruby", "-e", script, dest], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ovswitch_vxlan"
