"""The lab's NFS client: a FUSE file system over libnfs, mounted as `mount -t fuse.nfs4 SERVER:/EXPORT DIR`.

The kernel here has no NFS client, so this is the closest real mount: every
operation goes to the real NFS server (nfs-ganesha, onemetal.lab.nfs) over
NFSv4, and mountinfo shows fstype `fuse.nfs4` with source `SERVER:/EXPORT`.
mount(8) runs it through its FUSE helper (mount.fuse3 runs the program `nfs4`,
found on the lab host's PATH) as `nfs4 SERVER:/EXPORT DIR -o OPTIONS`. It runs
as root with allow_other and default_permissions: the kernel checks each
caller's permissions against the modes and owners the server reports, and
each request goes to the server as the caller's uid/gid.
"""

from __future__ import annotations

import os
import stat
import sys

import fuse

from onemetal.lab.nfs_lib import Nfs, NfsError, Stat64, opened

fuse.fuse_python_api = (0, 2)
SUBTYPE = "nfs4"
# What libnfs' NFSv4 open takes (it refuses O_NONBLOCK with ERANGE); the kernel keeps the rest.
OPEN_FLAGS = os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_SYNC
PID_DIR = "/run/lab-nfs4"  # onemetal.lab.nfs.CLIENT_PIDS (not imported: the client stays small)
# What FUSE needs for a file system shared by users, and writes larger than a page.
FUSE_OPTIONS = ("allow_other", "default_permissions", "big_writes", "max_write=1048576",
                "max_read=1048576", "subtype=" + SUBTYPE)


def _stat(st: Stat64) -> fuse.Stat:
    out = fuse.Stat()
    for name in ("mode", "ino", "dev", "nlink", "uid", "gid", "size", "blocks", "blksize"):
        setattr(out, "st_" + name, getattr(st, name))
    out.st_rdev = st.rdev
    out.st_atime, out.st_mtime, out.st_ctime = st.atime, st.mtime, st.ctime
    return out


class Handle:
    """An open file on its own libnfs context (fuse-python takes an int from open() as an error)."""

    def __init__(self, nfs: Nfs, fh: int) -> None:
        self.nfs, self.fh = nfs, fh


def _handle(ret: tuple[Nfs, int] | int) -> Handle | int:
    return ret if isinstance(ret, int) else Handle(*ret)


class NfsFs(fuse.Fuse):  # type: ignore[misc]
    nfs: Nfs

    def fsinit(self) -> None:
        # Runs after FUSE went to the background: the lab stops clients by these pids.
        if os.path.isdir(PID_DIR):
            open(os.path.join(PID_DIR, str(os.getpid())), "w").close()

    def _who(self) -> tuple[int, int]:
        ctx = self.GetContext()
        return int(ctx["uid"]), int(ctx["gid"])

    def _do(self, name: str, *args: object) -> int:
        return self.nfs.call(name, *self._who(), *args)

    def getattr(self, path: str) -> fuse.Stat | int:
        st = self.nfs.stat(path.encode(), *self._who())
        return st if isinstance(st, int) else _stat(st)

    def fgetattr(self, path: str, fh: Handle) -> fuse.Stat | int:
        st = fh.nfs.fstat(fh.fh, *self._who())
        return st if isinstance(st, int) else _stat(st)

    def readdir(self, path: str, offset: int):  # type: ignore[no-untyped-def]
        names = self.nfs.listdir(path.encode(), *self._who())
        if isinstance(names, int):
            yield names
            return
        for name in names:
            yield fuse.Direntry(name)

    def readlink(self, path: str) -> str | int:
        target = self.nfs.readlink(path.encode(), *self._who())
        return target if isinstance(target, int) else target.decode(errors="surrogateescape")

    def statfs(self) -> fuse.StatVfs | int:
        st = self.nfs.statvfs(b"/", *self._who())
        if isinstance(st, int):
            return st
        return fuse.StatVfs(f_bsize=st.bsize, f_frsize=st.frsize, f_blocks=st.blocks,
                            f_bfree=st.bfree, f_bavail=st.bavail, f_files=st.files,
                            f_ffree=st.ffree, f_favail=st.favail, f_namemax=st.namemax)

    def mkdir(self, path: str, mode: int) -> int:
        return self._do("mkdir2", path.encode(), mode)

    def rmdir(self, path: str) -> int:
        return self._do("rmdir", path.encode())

    def unlink(self, path: str) -> int:
        return self._do("unlink", path.encode())

    def rename(self, old: str, new: str) -> int:
        return self._do("rename", old.encode(), new.encode())

    def symlink(self, target: str, name: str) -> int:
        return self._do("symlink", target.encode(), name.encode())

    def chmod(self, path: str, mode: int) -> int:
        return self._do("chmod", path.encode(), stat.S_IMODE(mode))

    def chown(self, path: str, uid: int, gid: int) -> int:
        return self._do("chown", path.encode(), uid, gid)

    def truncate(self, path: str, size: int) -> int:
        return self._do("truncate", path.encode(), size)

    def utimens(self, path: str, atime: fuse.Timespec, mtime: fuse.Timespec) -> int:
        return self.nfs.utimes(path.encode(), atime.tv_sec + atime.tv_nsec / 1e9,
                               mtime.tv_sec + mtime.tv_nsec / 1e9, *self._who())

    def open(self, path: str, flags: int) -> Handle | int:
        return _handle(opened(self.nfs, path.encode(), flags & OPEN_FLAGS, 0, *self._who(),
                              create=False))

    def create(self, path: str, flags: int, mode: int) -> Handle | int:
        handle = _handle(opened(self.nfs, path.encode(), flags & (OPEN_FLAGS | os.O_CREAT | os.O_EXCL),
                                stat.S_IMODE(mode), *self._who(), create=True))
        if isinstance(handle, Handle):  # libnfs' NFSv4 create leaves 0600: set the mode asked for
            handle.nfs.call("fchmod", *self._who(), handle.fh, stat.S_IMODE(mode))
        return handle

    def read(self, path: str, size: int, offset: int, fh: Handle) -> bytes | int:
        return fh.nfs.pread(fh.fh, offset, size, *self._who())

    def write(self, path: str, buf: bytes, offset: int, fh: Handle) -> int:
        return fh.nfs.pwrite(fh.fh, offset, buf, *self._who())

    def ftruncate(self, path: str, size: int, fh: Handle) -> int:
        # libnfs' NFSv4 ftruncate fails with ERANGE on a second call (qemu-img makes one): a
        # path-based SETATTR, from the share's main context, does the same to the same file.
        return self._do("truncate", path.encode(), size)

    def fsync(self, path: str, datasync: int, fh: Handle) -> int:
        return fh.nfs.call("fsync", *self._who(), fh.fh)

    def flush(self, path: str, fh: Handle) -> int:
        return 0

    def release(self, path: str, flags: int, fh: Handle) -> int:
        ret = fh.nfs.call("close", *self._who(), fh.fh)
        fh.nfs.close()
        return ret


def main(argv: list[str]) -> int:
    """`nfs4 SERVER:/EXPORT DIR [-o OPTIONS]`, as mount.fuse3 calls it."""
    if len(argv) < 2 or ":" not in argv[0]:
        print("usage: nfs4 SERVER:/EXPORT MOUNTPOINT [-o OPTIONS]", file=sys.stderr)
        return 2
    source, rest = argv[0], argv[1:]
    server, _, export = source.partition(":")
    fs = NfsFs(usage="nfs4 SERVER:/EXPORT MOUNTPOINT [-o OPTIONS]")
    fs.multithreaded = False  # one libnfs context: requests are served in order
    fs.parse([*rest, "-o", ",".join((*FUSE_OPTIONS, "fsname=" + source))], errex=1)
    try:
        fs.nfs = Nfs(server, export or "/")
    except NfsError as exc:  # before FUSE mounts: mount(8) fails with this line
        print(f"nfs4: {exc}", file=sys.stderr)
        return 1
    fs.main()
    return 0
