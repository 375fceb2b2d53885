"""`pip install .` (not editable) ships the remotes, hooks and etc files under share/onemetal,
where `onemetal install` finds them (install.source_root): setup.cfg must list every one."""

from __future__ import annotations

import configparser
import os

ROOT = os.path.join(os.path.dirname(__file__), "..")
SHIPPED = ("remotes", "hooks", "etc")
CORE = os.path.join("remotes", "onemetal", "lib")  # the package itself, installed as such


def tree_files() -> set[str]:
    out = set()
    for top in SHIPPED:
        for directory, dirs, names in os.walk(os.path.join(ROOT, top)):
            rel = os.path.relpath(directory, ROOT)
            dirs[:] = [d for d in dirs if d != "__pycache__" and os.path.join(rel, d) != CORE]
            out.update(os.path.join(rel, name) for name in names)
    return out


def listed() -> dict[str, str]:
    """Each file setup.cfg ships -> the directory it lands in."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    return {path: target for target, paths in parser["options.data_files"].items()
            for path in paths.split()}


def test_setup_cfg_ships_every_remote_hook_and_etc_file_where_install_looks():
    ships = listed()
    assert set(ships) == tree_files()
    for path, target in ships.items():
        assert target == os.path.join("share/onemetal", os.path.dirname(path)), path
