#!/usr/bin/env python3
"""Build the stock ovswitch_vxlan remotes tree from an OpenNebula source checkout.

The result is laid out as OpenNebula's install.sh puts it under /var/lib/one/remotes, which
`onehost sync` copies to a host's /var/tmp/one:

  vnm/                          src/vnm_mad/remotes/lib/* (vnmmad.rb, vnm_driver.rb, command.rb, ...)
  vnm/ovswitch_vxlan/, vnm/ovswitch/, vnm/vxlan/
                                src/vnm_mad/remotes/<driver>/ and empty pre.d, post.d, clean.d
  CommandManager.rb, ...        the src/mad/ruby files the driver requires (MAD_RUBY_LIB_FILES)
  etc/vnm/OpenNebulaNetwork.conf

One change, the one OpenNebula's packaging makes itself (share/misc/update_rubygems_setup):
the `%%RUBYGEMS_SETUP%%` block of every script is emptied. Stock, it requires
/usr/lib/one/ruby/load_opennebula_paths.rb, which points rubygems at the gems OpenNebula's
packages bundle; a host with only Debian's ruby (rexml is one of its bundled gems) has neither.

usage: stock_tree.py CHECKOUT DEST
       stock_tree.py --git GIT_DIR [--ref REF] DEST     (e.g. a bare mirror, REF a release tag)
Never commit what this builds: it is OpenNebula's code.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tarfile
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))

from onemetal.run import Runner  # noqa: E402

DRIVERS = ("ovswitch_vxlan", "ovswitch", "vxlan")  # ovswitch_vxlan requires the other two
HOOK_DIRS = ("pre.d", "post.d", "clean.d")
SOURCES = ("src/vnm_mad", "src/mad/ruby", "install.sh")
_SETUP = re.compile(r"(%%RUBYGEMS_SETUP_BEGIN%%[^\n]*)\n.*?\n([^\n]*%%RUBYGEMS_SETUP_END%%)", re.S)
_REQUIRE = re.compile(r"^\s*require(?:_relative)?\s+['\"]([\w/]+)['\"]", re.M)


def _copy_files(source: str, dest: str) -> list[str]:
    """The regular files of `source` (not its subdirectories), modes kept."""
    os.makedirs(dest, exist_ok=True)
    copied = []
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if os.path.isfile(path) and not name.startswith("."):
            shutil.copy2(path, os.path.join(dest, name))
            copied.append(os.path.join(dest, name))
    return copied


def _ruby_requires(paths: list[str]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            names.update(m.group(1) for m in _REQUIRE.finditer(f.read()))
    return names


def _empty_gem_setup(paths: list[str]) -> int:
    changed = 0
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        new = _SETUP.sub(r"\1\n\2", text)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            changed += 1
    return changed


def build(checkout: str, dest: str) -> list[str]:
    """Lay the tree out in `dest` (created, must not exist); returns the files written."""
    src = os.path.join(checkout, "src")
    remotes = os.path.join(src, "vnm_mad", "remotes")
    if not os.path.isfile(os.path.join(remotes, "ovswitch_vxlan", "pre")):
        raise SystemExit(f"{checkout}: no src/vnm_mad/remotes/ovswitch_vxlan/pre "
                         "(not an OpenNebula source checkout?)")
    os.makedirs(dest)
    files = _copy_files(os.path.join(remotes, "lib"), os.path.join(dest, "vnm"))
    for driver in DRIVERS:
        target = os.path.join(dest, "vnm", driver)
        files += _copy_files(os.path.join(remotes, driver), target)
        for hooks in HOOK_DIRS:
            os.makedirs(os.path.join(target, hooks), exist_ok=True)
    etc = os.path.join(dest, "etc", "vnm")
    os.makedirs(etc)
    shutil.copy2(os.path.join(remotes, "OpenNebulaNetwork.conf"), etc)
    files.append(os.path.join(etc, "OpenNebulaNetwork.conf"))
    # The framework files the driver requires land in remotes/ (CommandManager.rb, ...);
    # following requires until none is new also covers older releases' scripts_common.rb.
    mad_ruby = os.path.join(src, "mad", "ruby")
    seen: set[str] = set()
    while True:
        wanted = {n for n in _ruby_requires(files) - seen
                  if os.path.isfile(os.path.join(mad_ruby, f"{n}.rb"))}
        if not wanted:
            break
        for name in sorted(wanted):
            shutil.copy2(os.path.join(mad_ruby, f"{name}.rb"), dest)
            files.append(os.path.join(dest, f"{name}.rb"))
        seen |= wanted
    _empty_gem_setup(files)
    return files


def export(git_dir: str, ref: str, workdir: str) -> str:
    """The parts of `ref` that build() reads, as a directory (git archive, no work tree)."""
    archive = os.path.join(workdir, "one.tar")
    Runner(timeout=120).run(["git", "-C", git_dir, "archive", "--format=tar", "-o", archive,
                             ref, *SOURCES])
    checkout = os.path.join(workdir, "one")
    with tarfile.open(archive) as tar:
        tar.extractall(checkout, filter="data")
    return checkout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", nargs="?", help="an OpenNebula source checkout")
    parser.add_argument("dest", help="the tree to create (must not exist)")
    parser.add_argument("--git", metavar="GIT_DIR", help="read from this git dir instead")
    parser.add_argument("--ref", default="HEAD", help="with --git: the commit or tag (HEAD)")
    args = parser.parse_args(argv)
    if bool(args.git) == bool(args.checkout):
        parser.error("give either CHECKOUT or --git GIT_DIR")
    if os.path.exists(args.dest):
        parser.error(f"{args.dest} exists: give a new directory")
    with tempfile.TemporaryDirectory(prefix="onemetal-stock-") as work:
        checkout = export(args.git, args.ref, work) if args.git else args.checkout
        files = build(checkout, args.dest)
    print(f"{args.dest}: {len(files)} files of OpenNebula's ovswitch_vxlan driver "
          f"({args.ref if args.git else checkout})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
