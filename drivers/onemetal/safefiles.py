"""Files below roots whose contents someone else may control, read and written without following links.

A root process working in a tree an unprivileged user owns (the installer over
oneadmin's /var/lib/one) must not be led out of it by a planted link or
directory. So every path is reached from its root one component at a time with
O_NOFOLLOW, a file is written to a fresh temporary file beside it and renamed
over it, and a file is removed only while it is a regular file below a root.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Sequence

from onemetal.errors import OneMetalError

Owner = tuple[int, int]  # (uid, gid); -1 leaves one as it is

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the lstat must not hang the caller.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class InstallError(OneMetalError):
    """Raised by the installer and by these primitives alike, so that its callers catch one
    type whether a source was missing or a planted path was refused."""


def root_of(path: str, roots: Sequence[str]) -> str:
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


def open_dir(directory: str, roots: Sequence[str], *, create: bool) -> int | None:
    """A descriptor of `directory`, opened from its root's parent (named by the operator, so
    trusted) one component at a time with O_NOFOLLOW: a link anywhere from the root down is
    refused, and swapping one in later changes nothing. None if a component is missing."""
    root = root_of(directory, roots)
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


def read(path: str, roots: Sequence[str]) -> tuple[bytes, int] | None:
    """(content, mode) of the regular file `path`, None if it is absent."""
    fd = open_dir(os.path.dirname(path), roots, create=False)
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


@dataclass
class Staged:
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


def stage(path: str, data: bytes, roots: Sequence[str], mode: int | None = None,
          owner: Owner | None = None) -> Staged:
    """Write `data` to a new randomly named file beside `path`. `mode`/`owner` None: those of
    the file it replaces (0644, and the caller's own, for a new one)."""
    fd = open_dir(os.path.dirname(path), roots, create=True)
    assert fd is not None  # create=True opens or raises
    name = os.path.basename(path)
    try:
        old = _lstat_regular(fd, name, path)
        temp = f".{name}.{secrets.token_hex(8)}.onemetal-tmp"
        temp_fd = os.open(temp, _CREATE_FLAGS, 0o600, dir_fd=fd)
    except BaseException:
        os.close(fd)
        raise
    staged = Staged(fd, temp, path)
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


def write(path: str, data: bytes, roots: Sequence[str], mode: int | None = None,
          owner: Owner | None = None) -> None:
    stage(path, data, roots, mode, owner).commit()


def remove(path: str, roots: Sequence[str]) -> None:
    fd = open_dir(os.path.dirname(path), roots, create=False)
    if fd is None:
        return
    try:
        if _lstat_regular(fd, os.path.basename(path), path) is not None:
            os.unlink(os.path.basename(path), dir_fd=fd)
    finally:
        os.close(fd)
    prune_empty(os.path.dirname(path), roots)


def prune_empty(directory: str, roots: Sequence[str]) -> None:
    """rmdir `directory` and its empty parents, never the root itself nor anything outside it."""
    root = root_of(directory, roots)
    while directory != root:
        parent = os.path.dirname(directory)
        fd = open_dir(parent, roots, create=False)
        if fd is None:
            return
        try:
            os.rmdir(os.path.basename(directory), dir_fd=fd)
        except OSError:
            return  # not empty, gone, or a link: stop here
        finally:
            os.close(fd)
        directory = parent
