"""`onemetal install` / `uninstall`: put the remotes, the core they carry, and the hooks into a frontend.

The core is copied inside the remotes tree (remotes/onemetal/lib) so that
`onehost sync` brings it to every host. The install is a reconcile plan over
files: idempotent, printable with --dry-run, reversed by uninstall through the
manifest it writes. onemetal.conf is created only when absent and removed only
while it is still the shipped default.

It runs as root over /var/lib/one, a tree the unprivileged oneadmin owns: a
link, a directory or a manifest entry found there may have been planted. So
every path is reached from its root one component at a time without following
links, every file is written to a fresh temporary file and renamed over its
destination, and nothing is removed unless the manifest names it, it lies below
an install root and it is a regular file.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import json
import os
import secrets
import stat
import sys
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import onemetal
from onemetal.errors import MissingDependency, OneMetalError
from onemetal.reconcile import Plan, diff
from onemetal.run import CommandError, CommandRunner, Runner

MANIFEST = "remotes/onemetal/manifest.json"
CONF = "onemetal.conf"
SUDOERS = "etc/sudoers.d"
BEGIN = "# BEGIN onemetal: managed by `onemetal install`, edit etc/oned.d/ instead"
END = "# END onemetal"
# sudo ignores a sudoers.d file that is writable by anyone but root.
SUDOERS_MODE = 0o440
VISUDO_TIMEOUT = 10.0

FileState = tuple[str, int]  # (sha256, mode)
Owner = tuple[int, int]      # (uid, gid); -1 leaves one as it is

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the lstat must not hang the install.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class InstallError(OneMetalError):
    pass


def source_root() -> str:
    """The checkout this package runs from, or the data files `pip install .` put under share/."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(onemetal.__file__))))
    for root in (repo, os.path.join(sys.prefix, "share", "onemetal")):
        if os.path.isdir(os.path.join(root, "remotes")) and os.path.isdir(os.path.join(root, "etc")):
            return root
    raise InstallError("cannot find the remotes/ and etc/ directories; pass --source", "source")


def _state(data: bytes, mode: int) -> FileState:
    return hashlib.sha256(data).hexdigest()[:16], mode


def _digest(path: str) -> FileState:
    """State of a source file (the checkout is trusted; destinations go through `_inspect`)."""
    with open(path, "rb") as f:
        return _state(f.read(), os.fstat(f.fileno()).st_mode & 0o777)


# --- Paths below the install roots, reached without following a link -------------------------

def _root_of(path: str, roots: Sequence[str]) -> str:
    """The root `path` is (or lies below); refuses any path that is not normalised."""
    if not os.path.isabs(path) or os.path.normpath(path) != path or ".." in path.split(os.sep):
        raise InstallError("not a normalised absolute path (no '..'): refused", path)
    for root in roots:
        if path == root or path.startswith(root + os.sep):
            return root
    raise InstallError(f"not below the install roots ({', '.join(roots)}): refused; uninstall "
                       "needs the --systemd-dir and --sudoers-dir install was given", path)


def _open_child(fd: int, name: str, path: str, create: bool) -> int | None:
    if create:
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
        except FileExistsError:
            pass  # a link sitting there is refused by the open below
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InstallError("is a symlink or not a directory: refused", path) from None
        raise


def _open_dir(directory: str, roots: Sequence[str], *, create: bool) -> int | None:
    """A descriptor of `directory`, opened from its root's parent (named by the operator, so
    trusted) one component at a time with O_NOFOLLOW: a link anywhere from the root down is
    refused, and swapping one in later changes nothing. None if a component is missing."""
    root = _root_of(directory, roots)
    anchor = os.path.dirname(root)
    if create:
        os.makedirs(anchor, exist_ok=True)
    try:
        fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    path = anchor
    for name in os.path.relpath(directory, anchor).split(os.sep):
        path = os.path.join(path, name)
        try:
            child = _open_child(fd, name, path, create)
        finally:
            os.close(fd)
        if child is None:
            return None
        fd = child
    return fd


def _lstat_regular(dir_fd: int, name: str, path: str) -> os.stat_result | None:
    """The file's lstat, None if absent; refuses a link or anything but a regular file."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise InstallError("is a symlink: refused (onemetal never writes or deletes through one)", path)
    if not stat.S_ISREG(st.st_mode):
        raise InstallError("is not a regular file: refused", path)
    return st


def _read(path: str, roots: Sequence[str]) -> tuple[bytes, int] | None:
    """(content, mode) of the regular file `path`, None if it is absent."""
    fd = _open_dir(os.path.dirname(path), roots, create=False)
    if fd is None:
        return None
    name = os.path.basename(path)
    try:
        if _lstat_regular(fd, name, path) is None:
            return None
        with os.fdopen(os.open(name, _READ_FLAGS, dir_fd=fd), "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_mode & 0o777
    finally:
        os.close(fd)


def _inspect(path: str, roots: Sequence[str]) -> FileState | None:
    found = _read(path, roots)
    return None if found is None else _state(*found)


@dataclass
class _Staged:
    """A complete temporary file next to its destination, not yet renamed over it."""

    dir_fd: int
    temp: str
    path: str

    @property
    def temp_path(self) -> str:
        return os.path.join(os.path.dirname(self.path), self.temp)

    def commit(self) -> None:
        try:
            # rename(2) replaces a link at the destination, it never writes through it.
            os.replace(self.temp, os.path.basename(self.path),
                       src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            os.fsync(self.dir_fd)
        finally:
            os.close(self.dir_fd)

    def discard(self) -> None:
        try:
            os.unlink(self.temp, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.dir_fd)


def _fill(fd: int, data: bytes, mode: int, owner: Owner) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fchown(f.fileno(), *owner)  # before the chmod: a chown clears set-id bits
        os.fchmod(f.fileno(), mode)
        os.fsync(f.fileno())


def _stage(path: str, data: bytes, roots: Sequence[str], mode: int | None = None,
           owner: Owner | None = None) -> _Staged:
    """Write `data` to a new randomly named file beside `path`. `mode`/`owner` None: those of
    the file it replaces (0644, and the installer's own, for a new one)."""
    fd = _open_dir(os.path.dirname(path), roots, create=True)
    assert fd is not None  # create=True opens or raises
    name = os.path.basename(path)
    try:
        old = _lstat_regular(fd, name, path)
        temp = f".{name}.{secrets.token_hex(8)}.onemetal-tmp"
        temp_fd = os.open(temp, _CREATE_FLAGS, 0o600, dir_fd=fd)
    except BaseException:
        os.close(fd)
        raise
    staged = _Staged(fd, temp, path)
    if mode is None:
        mode = stat.S_IMODE(old.st_mode) if old else 0o644
    if owner is None:
        owner = (old.st_uid, old.st_gid) if old else (-1, -1)
    try:
        _fill(temp_fd, data, mode, owner)
    except BaseException:
        staged.discard()
        raise
    return staged


def _write(path: str, data: bytes, roots: Sequence[str], mode: int | None = None,
           owner: Owner | None = None) -> None:
    _stage(path, data, roots, mode, owner).commit()


def _remove(path: str, roots: Sequence[str]) -> None:
    fd = _open_dir(os.path.dirname(path), roots, create=False)
    if fd is None:
        return
    try:
        if _lstat_regular(fd, os.path.basename(path), path) is not None:
            os.unlink(os.path.basename(path), dir_fd=fd)
    finally:
        os.close(fd)
    _prune_empty(os.path.dirname(path), roots)


def _prune_empty(directory: str, roots: Sequence[str]) -> None:
    """rmdir `directory` and its empty parents, never the root itself nor anything outside it."""
    root = _root_of(directory, roots)
    while directory != root:
        parent = os.path.dirname(directory)
        fd = _open_dir(parent, roots, create=False)
        if fd is None:
            return
        try:
            os.rmdir(os.path.basename(directory), dir_fd=fd)
        except OSError:
            return  # not empty, gone, or a link: stop here
        finally:
            os.close(fd)
        directory = parent


# --- What the install owns -------------------------------------------------------------------

# A hook runs on the frontend with the interpreter onemetal is installed in (pyone is there).
_ENV_PYTHON = b"#!/usr/bin/env python3\n"


def _content(src: str, dest: str) -> bytes:
    """What `dest` must hold: the source, with a hook's interpreter line made explicit."""
    with open(src, "rb") as f:
        data = f.read()
    if f"{os.sep}hooks{os.sep}onemetal{os.sep}" in dest and data.startswith(_ENV_PYTHON):
        data = f"#!{sys.executable}\n".encode() + data[len(_ENV_PYTHON):]
    if dest.endswith(".service"):
        # The unit runs the console scripts installed next to this interpreter.
        data = data.replace(b"@BIN@", os.path.dirname(sys.executable).encode())
    return data


def _mode(path: str) -> int:
    with open(path, "rb") as f:
        return 0o755 if f.read(2) == b"#!" else 0o644


def _walk(top: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(absolute path, path relative to top) of regular files, links followed like rsync -L."""
    for base, dirs, files in os.walk(top, followlinks=True):
        rel_base = os.path.relpath(base, top)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                         and os.path.normpath(os.path.join(rel_base, d)) not in skip)
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield os.path.join(base, name), os.path.normpath(os.path.join(rel_base, name))


def _sudoers_sources(source_dir: str, dest_dir: str) -> dict[str, str]:
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


@dataclass(frozen=True)
class Manifest:
    files: list[str] = field(default_factory=list)  # every path the install wrote
    conf_sha256: str | None = None                  # the shipped onemetal.conf it installed


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
            out.update(_sudoers_sources(os.path.join(self.source, SUDOERS), self.sudoers))
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
        root = _root_of(entry, self.roots())
        if entry == root:
            raise InstallError("is an install root, not a file: refused", entry)
        if root != self.remotes and "onemetal" not in os.path.basename(entry):
            # Outside oneadmin's tree (systemd, sudoers.d) every file onemetal installs says so.
            raise InstallError("not a file onemetal installs (no 'onemetal' in its name): refused",
                               entry)
        return entry

    def read_manifest(self) -> Manifest:
        """The manifest with every entry checked: one bad entry refuses it all, before any change."""
        found = _read(self.manifest, self.roots())
        if found is None:
            return Manifest()
        try:
            data = json.loads(found[0].decode("utf-8"))
            files = [self.check_entry(e) for e in data["files"]]
            sha = data.get("conf_sha256")
            return Manifest(files, sha if isinstance(sha, str) else None)
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


# --- sudoers files: accepted by visudo before they take effect --------------------------------

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
    """Stage every file, have visudo accept each, then rename them all: sudo never reads a
    broken file (a broken sudoers.d file disables sudo), and a rejection leaves DIR as it was."""
    staged: list[_Staged] = []
    try:
        for path, data in files.items():
            staged.append(_stage(path, data, roots, SUDOERS_MODE, owner=(0, 0)))
            _visudo(staged[-1].temp_path, path, runner)
    except BaseException:
        for item in staged:
            item.discard()
        raise
    for item in staged:
        item.commit()


class InstalledFiles:
    """A set of installed files as a reconcile Resource: destination path -> (sha256, mode)."""

    def __init__(self, subject: str, sources: Mapping[str, str], roots: Sequence[str],
                 recorded: Sequence[str] = (), sudoers: str | None = None,
                 runner: CommandRunner = Runner()) -> None:
        self.subject = subject
        self.sources = sources
        self.roots = roots
        self.recorded = recorded
        self.sudoers = sudoers
        self.runner = runner

    def _is_sudoers(self, dest: str) -> bool:
        return self.sudoers is not None and os.path.dirname(dest) == self.sudoers

    def want(self) -> dict[str, FileState]:
        return {dest: _state(_content(src, dest),
                             SUDOERS_MODE if self._is_sudoers(dest) else _mode(src))
                for dest, src in self.sources.items()}

    def read(self) -> Mapping[str, FileState]:
        """Also refuses, before anything changes, a link at or above any of the paths."""
        paths = sorted(set(self.sources) | set(self.recorded))
        states = {p: _inspect(p, self.roots) for p in paths}
        return {p: s for p, s in states.items() if s is not None}

    def check(self, plan: Plan[str, FileState]) -> None:
        """What a dry run can verify without writing: visudo on the sudoers sources."""
        for dest in [*plan.add, *plan.change]:
            if self._is_sudoers(dest):
                _visudo(self.sources[dest], dest, self.runner)

    def apply(self, plan: Plan[str, FileState]) -> None:
        writes = [*plan.add, *plan.change]
        checked = [d for d in writes if self._is_sudoers(d)]
        # First, so that a rejected sudoers file fails the install before anything changed.
        _install_checked({d: _content(self.sources[d], d) for d in checked}, self.roots, self.runner)
        for dest in writes:
            if dest not in checked:
                _write(dest, _content(self.sources[dest], dest), self.roots, _mode(self.sources[dest]))
        for dest in plan.remove:
            _remove(dest, self.roots)


def install_sudoers(source_dir: str, dest_dir: str, out: list[str], *, dry_run: bool = False,
                    runner: CommandRunner = Runner()) -> list[str]:
    """Install every file of `source_dir` into the sudoers.d `dest_dir`, root 0440, each once
    visudo accepted it; returns the destination paths. For a host's sudoers.d directly."""
    dest_dir = os.path.abspath(dest_dir)
    sources = _sudoers_sources(source_dir, dest_dir)
    resource = InstalledFiles(f"sudoers@{dest_dir}", sources, (dest_dir,), sudoers=dest_dir,
                              runner=runner)
    plan = diff(resource.subject, resource.want(), resource.read())
    out.append(str(plan))
    if dry_run:
        resource.check(plan)
    else:
        resource.apply(plan)
    return sorted(sources)


def _write_manifest(layout: Layout, files: list[str], conf_digest: str) -> None:
    text = json.dumps({"version": onemetal.__version__, "files": sorted(files),
                       "conf_sha256": conf_digest}, indent=1).encode()
    found = _read(layout.manifest, layout.roots())
    if found is None or found[0] != text:  # no change, no write
        _write(layout.manifest, text, layout.roots(), 0o644)


def _conf_perms() -> tuple[int, Owner]:
    """oned's drivers read onemetal.conf as oneadmin: 0640 root:oneadmin, or 0644 without that group."""
    try:
        return 0o640, (-1, grp.getgrnam("oneadmin").gr_gid)
    except KeyError:
        return 0o644, (-1, -1)


def _read_oned_conf(path: str, etc: str) -> str:
    found = _read(path, (etc,))
    if found is None:
        raise InstallError("not found, cannot apply the fragments", path)
    return found[0].decode("utf-8")


def oned_conf_with_block(text: str, block: str) -> str:
    """`text` with our managed block replaced (or appended, or removed when `block` is empty)."""
    start, end = text.find(BEGIN), text.find(END)
    if (start < 0) != (end < 0) or end < start:
        raise InstallError("has a broken onemetal block (BEGIN without END); fix it by hand", "oned.conf")
    if start >= 0:
        text = text[:start].rstrip("\n") + "\n" + text[end + len(END):].lstrip("\n")
    if block:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{block.rstrip()}\n{END}\n"
    return text if text.strip() else ""


def _resource(layout: Layout, sources: Mapping[str, str], recorded: Sequence[str],
              runner: CommandRunner) -> InstalledFiles:
    return InstalledFiles(f"install@{layout.prefix}", sources, layout.roots(), recorded,
                          layout.sudoers, runner)


def install(layout: Layout, *, dry_run: bool, apply_oned_conf: bool, out: list[str],
            runner: CommandRunner = Runner()) -> Plan[str, FileState]:
    resource = _resource(layout, layout.sources(), layout.recorded(), runner)
    plan = diff(resource.subject, resource.want(), resource.read())
    shipped_conf = os.path.join(layout.source, "etc", CONF)
    new_conf = not os.path.lexists(layout.conf)  # an existing one, even a link, is never changed
    out.append(str(plan))
    out.append(f"+ {layout.conf} (new, from etc/{CONF})" if new_conf
               else f"= {layout.conf} exists, kept as it is")
    fragments = layout.fragments()
    oned_conf = os.path.join(layout.etc, "oned.conf")
    current = updated = ""
    if apply_oned_conf:
        current = _read_oned_conf(oned_conf, layout.etc)
        updated = oned_conf_with_block(current, fragments)
        out.append(f"~ {oned_conf}: onemetal block {'updated' if updated != current else 'unchanged'}")
    elif fragments:
        out.append(f"Add to {oned_conf} (or rerun with --apply-oned-conf), then restart oned:\n"
                   f"{fragments}")
    if dry_run:
        resource.check(plan)
        return plan
    resource.apply(plan)
    if new_conf:
        with open(shipped_conf, "rb") as f:
            _write(layout.conf, f.read(), (layout.etc,), *_conf_perms())
    if updated != current:
        _write(oned_conf, updated.encode(), (layout.etc,))  # keeps its mode and owner
    _write_manifest(layout, list(resource.sources), _digest(shipped_conf)[0])
    return plan


def uninstall(layout: Layout, *, dry_run: bool, out: list[str]) -> Plan[str, FileState]:
    manifest = layout.read_manifest()
    recorded = manifest.files
    if not recorded:
        out.append(f"nothing to remove: no manifest at {layout.manifest}")
    resource = _resource(layout, {}, recorded, Runner())
    plan = diff(resource.subject, {}, resource.read())
    out.append(str(plan))
    conf = None if os.path.islink(layout.conf) else _inspect(layout.conf, (layout.etc,))
    conf_default = conf is not None and conf[0] == manifest.conf_sha256
    if os.path.lexists(layout.conf):
        out.append(f"- {layout.conf}" if conf_default
                   else f"= {layout.conf} kept: it differs from the shipped default")
    oned_conf = os.path.join(layout.etc, "oned.conf")
    found = _read(oned_conf, (layout.etc,))
    current = found[0].decode("utf-8") if found else ""
    if BEGIN in current:
        out.append(f"~ {oned_conf}: onemetal block removed")
    if dry_run:
        return plan
    resource.apply(plan)
    if conf_default:
        _remove(layout.conf, (layout.etc,))
    if BEGIN in current:
        _write(oned_conf, oned_conf_with_block(current, "").encode(), (layout.etc,))
    if recorded:
        _remove(layout.manifest, layout.roots())
    return plan
