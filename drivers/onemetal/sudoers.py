"""sudoers.d files: named so sudo reads them, root 0440, in place only once visudo accepted them.

A broken sudoers.d file disables sudo on the whole host, so each file is staged
beside its destination, checked by visudo there, and renamed in only when every
one of them passed.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from onemetal import safefiles
from onemetal.errors import MissingDependency
from onemetal.installed_files import FileState, InstalledFiles, content
from onemetal.reconcile import Plan, diff
from onemetal.run import CommandError, CommandRunner, Runner
from onemetal.safefiles import InstallError

SUDOERS = "etc/sudoers.d"
# sudo ignores a sudoers.d file that is writable by anyone but root.
SUDOERS_MODE = 0o440
VISUDO_TIMEOUT = 10.0


def sudoers_sources(source_dir: str, dest_dir: str) -> dict[str, str]:
    """Destination -> source of every file of `source_dir`, each name one sudo reads."""
    if not os.path.isdir(source_dir):
        raise InstallError("not found: no sudoers files to install", source_dir)
    out: dict[str, str] = {}
    for name in sorted(os.listdir(source_dir)):
        src = os.path.join(source_dir, name)
        if "." in name or "~" in name:
            raise InstallError("sudo skips a sudoers.d file whose name has '.' or '~': rename it", src)
        if "onemetal" not in name:
            # Uninstall tells onemetal's files in a root-owned directory from the host's by name.
            raise InstallError("a sudoers file onemetal installs must have 'onemetal' in its name", src)
        if not os.path.isfile(src):
            raise InstallError("is not a regular file", src)
        out[os.path.join(dest_dir, name)] = src
    return out


def _visudo(path: str, dest: str, runner: CommandRunner) -> None:
    try:
        runner.run(["visudo", "-cf", path], timeout=VISUDO_TIMEOUT)
    except MissingDependency:
        raise InstallError("visudo missing: install the Debian package sudo") from None
    except CommandError as exc:
        lines = (exc.result.stderr.strip() or exc.result.stdout.strip()).splitlines()
        reason = lines[0].replace(path, dest) if lines else str(exc)
        raise InstallError(f"rejected by visudo, not installed: {reason}", dest) from None


def _install_checked(files: Mapping[str, bytes], roots: Sequence[str], runner: CommandRunner) -> None:
    """Stage every file, have visudo accept each, then rename them all: a rejection leaves
    the directory as it was."""
    staged: list[safefiles.Staged] = []
    try:
        for path, data in files.items():
            staged.append(safefiles.stage(path, data, roots, SUDOERS_MODE, owner=(0, 0)))
            _visudo(staged[-1].temp_path, path, runner)
    except BaseException:
        for item in staged:
            item.discard()
        raise
    for item in staged:
        item.commit()


class InstalledWithSudoers(InstalledFiles):
    """Installed files of which those directly in `sudoers` go through visudo."""

    def __init__(self, subject: str, sources: Mapping[str, str], roots: Sequence[str],
                 recorded: Sequence[str] = (), sudoers: str | None = None,
                 runner: CommandRunner = Runner()) -> None:
        super().__init__(subject, sources, roots, recorded)
        self.sudoers = sudoers
        self.runner = runner

    def _is_sudoers(self, dest: str) -> bool:
        return self.sudoers is not None and os.path.dirname(dest) == self.sudoers

    def mode_of(self, dest: str) -> int:
        return SUDOERS_MODE if self._is_sudoers(dest) else super().mode_of(dest)

    def check(self, plan: Plan[str, FileState]) -> None:
        """What a dry run can verify without writing: visudo on the sudoers sources."""
        for dest in [*plan.add, *plan.change]:
            if self._is_sudoers(dest):
                _visudo(self.sources[dest], dest, self.runner)

    def write(self, dests: Sequence[str]) -> None:
        checked = [d for d in dests if self._is_sudoers(d)]
        # First, so that a rejected sudoers file fails the install before anything changed.
        _install_checked({d: content(self.sources[d], d) for d in checked}, self.roots, self.runner)
        super().write([d for d in dests if d not in checked])


def install_sudoers(source_dir: str, dest_dir: str, out: list[str], *, dry_run: bool = False,
                    runner: CommandRunner = Runner()) -> list[str]:
    """Install every file of `source_dir` into the sudoers.d `dest_dir`, root 0440, each once
    visudo accepted it; returns the destination paths. For a host's sudoers.d directly."""
    dest_dir = os.path.abspath(dest_dir)
    sources = sudoers_sources(source_dir, dest_dir)
    resource = InstalledWithSudoers(f"sudoers@{dest_dir}", sources, (dest_dir,), sudoers=dest_dir,
                                    runner=runner)
    plan = diff(resource.subject, resource.want(), resource.read())
    out.append(str(plan))
    if dry_run:
        resource.check(plan)
    else:
        resource.apply(plan)
    return sorted(sources)
