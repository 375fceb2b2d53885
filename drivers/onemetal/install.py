"""`onemetal install` / `uninstall`: put the remotes, the core they carry, and the hooks into a frontend.

The core is copied inside the remotes tree (remotes/onemetal/lib) so that
`onehost sync` brings it to every host. The install is a reconcile plan over
files: idempotent, printable with --dry-run, reversed by uninstall through the
manifest it writes. onemetal.conf is created only when absent and removed only
while it is still the shipped default.

It runs as root over /var/lib/one, a tree the unprivileged oneadmin owns: a
link, a directory or a manifest entry found there may have been planted. So
every destination goes through onemetal.safefiles, and nothing is removed
unless the manifest names it, it lies below an install root and it is a
regular file.
"""

from __future__ import annotations

import grp
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import onemetal
from onemetal import oned_conf as oned_text, oned_lists, safefiles
from onemetal.oned_conf import BEGIN  # noqa: F401 (tests read install.BEGIN)
from onemetal.installed_files import FileState, file_state, state
from onemetal.reconcile import Plan, diff
from onemetal.run import CommandRunner, Runner
from onemetal.safefiles import InstallError, Owner, root_of
# install_sudoers too: the lab and the tests reach everything the installer offers from here.
from onemetal.sudoers import SUDOERS, InstalledWithSudoers, install_sudoers, sudoers_sources  # noqa: F401

MANIFEST = "remotes/onemetal/manifest.json"
CONF = "onemetal.conf"


def source_root() -> str:
    """The checkout this package runs from, or the data files `pip install .` put under share/."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(onemetal.__file__))))
    for root in (repo, os.path.join(sys.prefix, "share", "onemetal")):
        if os.path.isdir(os.path.join(root, "remotes")) and os.path.isdir(os.path.join(root, "etc")):
            return root
    raise InstallError("cannot find the remotes/ and etc/ directories; pass --source", "source")


def _digest(path: str) -> FileState:
    """State of a source file (the checkout is trusted; destinations go through `file_state`)."""
    with open(path, "rb") as f:
        return state(f.read(), os.fstat(f.fileno()).st_mode & 0o777)


# --- What the install owns -------------------------------------------------------------------

def _walk(top: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(absolute path, path relative to top) of regular files, links followed like rsync -L."""
    for base, dirs, files in os.walk(top, followlinks=True):
        rel_base = os.path.relpath(base, top)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                         and os.path.normpath(os.path.join(rel_base, d)) not in skip)
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield os.path.join(base, name), os.path.normpath(os.path.join(rel_base, name))


@dataclass(frozen=True)
class Manifest:
    files: list[str] = field(default_factory=list)  # every path the install wrote
    conf_sha256: str | None = None                  # the shipped onemetal.conf it installed
    oned_lists: list[str] = field(default_factory=list)  # oned.conf lists it added onemetal to


@dataclass(frozen=True)
class Layout:
    prefix: str      # /var/lib/one
    etc: str         # /etc/one
    source: str
    systemd: str = "/etc/systemd/system"
    sudoers: str | None = None  # /etc/sudoers.d on a host; None: no sudoers files

    def __post_init__(self) -> None:
        # Normalised once, so that a path is below a root exactly when its string starts with it.
        for name in ("prefix", "etc", "systemd", "sudoers"):
            if getattr(self, name):
                object.__setattr__(self, name, os.path.abspath(getattr(self, name)))

    @property
    def remotes(self) -> str:
        return os.path.join(self.prefix, "remotes")

    def roots(self) -> tuple[str, ...]:
        """The directories the install writes below, and the only ones uninstall deletes from."""
        return tuple(r for r in (self.remotes, self.systemd, self.sudoers) if r)

    def sources(self) -> dict[str, str]:
        """Destination path -> source file, for every file the install owns."""
        out: dict[str, str] = {}
        for path, rel in _walk(os.path.join(self.source, "remotes"), skip=("onemetal/lib",)):
            out[os.path.join(self.remotes, rel)] = path
        core = os.path.dirname(os.path.abspath(onemetal.__file__))
        for path, rel in _walk(core):
            out[os.path.join(self.remotes, "onemetal", "lib", "onemetal", rel)] = path
        hooks = os.path.join(self.source, "hooks")
        if os.path.isdir(hooks):
            for path, rel in _walk(hooks):
                out[os.path.join(self.remotes, "hooks", "onemetal", rel)] = path
        units = os.path.join(self.source, "etc", "systemd")
        if os.path.isdir(units):
            for path, rel in _walk(units):
                out[os.path.join(self.systemd, rel)] = path
        if self.sudoers:
            out.update(sudoers_sources(os.path.join(self.source, SUDOERS), self.sudoers))
        for dest in out:
            self.check_entry(dest)  # install writes nothing its uninstall would refuse to remove
        return out

    @property
    def conf(self) -> str:
        return os.path.join(self.etc, CONF)

    @property
    def manifest(self) -> str:
        return os.path.join(self.prefix, MANIFEST)

    def check_entry(self, entry: object) -> str:
        """`entry` of the manifest (which oneadmin can edit) if it is a file install may own."""
        if not isinstance(entry, str):
            raise InstallError(f"manifest entry {entry!r} is not a path: refused", self.manifest)
        root = root_of(entry, self.roots())
        if entry == root:
            raise InstallError("is an install root, not a file: refused", entry)
        if root != self.remotes and "onemetal" not in os.path.basename(entry):
            # Outside oneadmin's tree (systemd, sudoers.d) every file onemetal installs says so.
            raise InstallError("not a file onemetal installs (no 'onemetal' in its name): refused",
                               entry)
        return entry

    def read_manifest(self) -> Manifest:
        """The manifest with every entry checked: one bad entry refuses it all, before any change."""
        found = safefiles.read(self.manifest, self.roots())
        if found is None:
            return Manifest()
        try:
            data = json.loads(found[0].decode("utf-8"))
            files = [self.check_entry(e) for e in data["files"]]
            sha = data.get("conf_sha256")
            lists = oned_lists.check_keys(data.get("oned_lists", []), self.manifest)
            return Manifest(files, sha if isinstance(sha, str) else None, lists)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InstallError(f"unreadable ({exc}); remove it to reinstall", self.manifest) from None

    def recorded(self) -> list[str]:
        return self.read_manifest().files

    def fragments(self) -> str:
        directory = os.path.join(self.source, "etc", "oned.d")
        if not os.path.isdir(directory):
            return ""
        parts = []
        for name in sorted(os.listdir(directory)):
            if name.endswith(".conf"):
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    parts.append(f"# {name}\n{f.read().rstrip()}\n")
        return "\n".join(parts)


def _write_manifest(layout: Layout, files: list[str], conf_digest: str, lists: list[str]) -> None:
    text = json.dumps({"version": onemetal.__version__, "files": sorted(files),
                       "conf_sha256": conf_digest, "oned_lists": lists}, indent=1).encode()
    found = safefiles.read(layout.manifest, layout.roots())
    if found is None or found[0] != text:  # no change, no write
        safefiles.write(layout.manifest, text, layout.roots(), 0o644)


def _conf_perms() -> tuple[int, Owner]:
    """oned's drivers read onemetal.conf as oneadmin: 0640 root:oneadmin, or 0644 without that group."""
    try:
        return 0o640, (-1, grp.getgrnam("oneadmin").gr_gid)
    except KeyError:
        return 0o644, (-1, -1)


def _resource(layout: Layout, sources: Mapping[str, str], recorded: Sequence[str],
              runner: CommandRunner) -> InstalledWithSudoers:
    return InstalledWithSudoers(f"install@{layout.prefix}", sources, layout.roots(), recorded,
                                layout.sudoers, runner)


def install(layout: Layout, *, dry_run: bool, apply_oned_conf: bool, out: list[str],
            runner: CommandRunner = Runner()) -> Plan[str, FileState]:
    previous = layout.read_manifest()
    resource = _resource(layout, layout.sources(), previous.files, runner)
    plan = diff(resource.subject, resource.want(), resource.read())
    shipped_conf = os.path.join(layout.source, "etc", CONF)
    new_conf = not os.path.lexists(layout.conf)  # an existing one, even a link, is never changed
    out.append(str(plan))
    out.append(f"+ {layout.conf} (new, from etc/{CONF})" if new_conf
               else f"= {layout.conf} exists, kept as it is")
    fragments = layout.fragments()
    oned_conf = os.path.join(layout.etc, "oned.conf")
    current = updated = ""
    lists = previous.oned_lists
    if apply_oned_conf:
        current = oned_text.read(oned_conf, layout.etc)
        updated, lists = oned_text.installed(current, fragments, previous.oned_lists, out)
    elif fragments:
        out.append(f"Add to {oned_conf} (or rerun with --apply-oned-conf), then restart oned:\n"
                   f"{fragments}")
    if dry_run:
        resource.check(plan)
        return plan
    resource.apply(plan)
    if new_conf:
        with open(shipped_conf, "rb") as f:
            safefiles.write(layout.conf, f.read(), (layout.etc,), *_conf_perms())
    if updated != current:
        safefiles.write(oned_conf, updated.encode(), (layout.etc,))  # keeps its mode and owner
    _write_manifest(layout, list(resource.sources), _digest(shipped_conf)[0], lists)
    return plan


def uninstall(layout: Layout, *, dry_run: bool, out: list[str]) -> Plan[str, FileState]:
    manifest = layout.read_manifest()
    recorded = manifest.files
    if not recorded:
        out.append(f"nothing to remove: no manifest at {layout.manifest}")
    resource = _resource(layout, {}, recorded, Runner())
    plan = diff(resource.subject, {}, resource.read())
    out.append(str(plan))
    conf = None if os.path.islink(layout.conf) else file_state(layout.conf, (layout.etc,))
    conf_default = conf is not None and conf[0] == manifest.conf_sha256
    if os.path.lexists(layout.conf):
        out.append(f"- {layout.conf}" if conf_default
                   else f"= {layout.conf} kept: it differs from the shipped default")
    oned_conf = os.path.join(layout.etc, "oned.conf")
    found = safefiles.read(oned_conf, (layout.etc,))
    current = found[0].decode("utf-8") if found else ""
    restored = oned_text.uninstalled(current, manifest.oned_lists, out)
    if dry_run:
        return plan
    resource.apply(plan)
    if conf_default:
        safefiles.remove(layout.conf, (layout.etc,))
    if restored != current:
        safefiles.write(oned_conf, restored.encode(), (layout.etc,))
    if recorded:
        safefiles.remove(layout.manifest, layout.roots())
    return plan
