"""libnfs 4.0 (Debian's libnfs13) through ctypes: the synchronous calls the lab's FUSE client makes.

Lab-only: hosts never load this. Every call returns libnfs's own result (>= 0, or
-errno), which FUSE passes on to the caller unchanged. One context serves the
whole mount, so calls are serialized, and each runs with the uid/gid of the
process that made the FUSE request (AUTH_SYS): files oneadmin creates are
9869's on the server, as on a kernel NFS mount.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import select
import socket
import threading
import time

LIBNFS = "libnfs.so.13"
NFS_V4 = 4
WRITE_PIECE = 3072  # what one NFSv4 WRITE may carry through libnfs 4.0 (see Nfs.pwrite)
WRITE_WINDOW = 64
_U64 = ctypes.c_uint64
_P = ctypes.c_void_p
_CONTEXTS = itertools.count()  # numbers this process's contexts: each is its own NFSv4 client


# void (*nfs_cb)(int err, struct nfs_context *nfs, void *data, void *private_data)
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, _P, _P, _P)


class Stat64(ctypes.Structure):
    _fields_ = [(name, _U64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
        "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class Statvfs64(ctypes.Structure):
    _fields_ = [(name, _U64) for name in (
        "bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail", "fsid",
        "flag", "namemax")]


class Dirent(ctypes.Structure):
    _fields_ = [("next", _P), ("name", ctypes.c_char_p)]  # the leading fields only: names suffice


class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]


class NfsError(RuntimeError):
    """The share could not be mounted (the message is libnfs's)."""


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(LIBNFS)
    lib.nfs_init_context.restype = _P
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_opendir.argtypes = [_P, ctypes.c_char_p, ctypes.POINTER(_P)]
    lib.nfs_readdir.restype = ctypes.POINTER(Dirent)
    lib.nfs_readdir.argtypes = [_P, _P]
    lib.nfs_closedir.argtypes = [_P, _P]
    for name in ("nfs_pread", "nfs_pwrite"):
        getattr(lib, name).argtypes = [_P, _P, _U64, _U64, ctypes.c_char_p]
    lib.nfs_truncate.argtypes = [_P, ctypes.c_char_p, _U64]
    lib.nfs_ftruncate.argtypes = [_P, _P, _U64]
    lib.nfs_fchmod.argtypes = [_P, _P, ctypes.c_int]
    lib.nfs4_set_client_name.argtypes = [_P, ctypes.c_char_p]
    lib.nfs_pwrite_async.argtypes = [_P, _P, _U64, _U64, ctypes.c_char_p, _CALLBACK, _P]
    for name in ("nfs_close", "nfs_fsync", "nfs_fstat64"):
        getattr(lib, name).argtypes = [_P, _P] + ([ctypes.POINTER(Stat64)] if "stat" in name else [])
    return lib


def _client_name() -> str:
    return f"lab-nfs4-{socket.gethostname()}-{os.getpid()}-{next(_CONTEXTS)}"


class Nfs:
    """One NFSv4 mount of server:/export, shared by all FUSE requests under a lock."""

    def __init__(self, server: str, export: str, timeout_ms: int = 10000) -> None:
        self.server, self.export, self.timeout_ms = server, export, timeout_ms
        self.lib = _lib()
        self.ctx = self.lib.nfs_init_context()
        self.lock = threading.Lock()
        self.lib.nfs_set_version(_P(self.ctx), NFS_V4)
        self.lib.nfs_set_timeout(_P(self.ctx), timeout_ms)  # a stopped server fails calls, bounded
        # libnfs names every context alike, and ganesha takes a second SETCLIENTID under a known
        # name with a new verifier for a rebooted client: it expires the first context's state,
        # whose next READ fails with NFS4ERR_EXPIRED (ERANGE), as in a copy within one mount.
        self.lib.nfs4_set_client_name(_P(self.ctx), _client_name().encode())
        if self.lib.nfs_mount(_P(self.ctx), server.encode(), export.encode()) != 0:
            raise NfsError(f"cannot mount {server}:{export}: {self.error()}")

    def close(self) -> None:
        self.lib.nfs_destroy_context(_P(self.ctx))

    def error(self) -> str:
        return (self.lib.nfs_get_error(_P(self.ctx)) or b"").decode(errors="replace")

    def call(self, name: str, uid: int, gid: int, *args: object) -> int:
        with self.lock:
            self.lib.nfs_set_uid(_P(self.ctx), uid)
            self.lib.nfs_set_gid(_P(self.ctx), gid)
            return int(getattr(self.lib, "nfs_" + name)(_P(self.ctx), *args))

    def stat(self, path: bytes, uid: int, gid: int) -> Stat64 | int:
        st = Stat64()
        ret = self.call("lstat64", uid, gid, path, ctypes.byref(st))
        return st if ret == 0 else ret

    def fstat(self, fh: int, uid: int, gid: int) -> Stat64 | int:
        st = Stat64()
        ret = self.call("fstat64", uid, gid, _P(fh), ctypes.byref(st))
        return st if ret == 0 else ret

    def statvfs(self, path: bytes, uid: int, gid: int) -> Statvfs64 | int:
        st = Statvfs64()
        ret = self.call("statvfs64", uid, gid, path, ctypes.byref(st))
        return st if ret == 0 else ret

    def open(self, path: bytes, flags: int, mode: int, uid: int, gid: int, create: bool) -> int:
        """A file handle (> 0), or -errno.

        libnfs 4.0 loses its NFSv4.0 open-owner sequence when a path operation (truncate) runs
        while a file is open on the same context, and every later OPEN then fails (ERANGE):
        so each open file gets a context of its own (see `opened`)."""
        fh = _P()
        ret = self.call("create" if create else "open2", uid, gid, path, flags, mode, ctypes.byref(fh))
        return int(fh.value or 0) if ret == 0 else ret

    def pread(self, fh: int, offset: int, size: int, uid: int, gid: int) -> bytes | int:
        buf = ctypes.create_string_buffer(size)
        ret = self.call("pread", uid, gid, _P(fh), offset, size, buf)
        return buf.raw[:ret] if ret >= 0 else ret

    def pwrite(self, fh: int, offset: int, data: bytes, uid: int, gid: int) -> int:
        """Bytes written, or -errno. libnfs 4.0 encodes an NFSv4 call into a buffer of about
        4000 bytes (it learns no write size over NFSv4): larger WRITEs fail to encode. So a
        write goes out in pieces that fit, WRITE_WINDOW of them in flight at once (one at a
        time, each waits a round trip through the lab's switch)."""
        pieces = [(at, data[at:at + WRITE_PIECE]) for at in range(0, len(data), WRITE_PIECE)]
        errors: list[int] = []
        pending = [0]

        def done(err: int, ctx: object, result: object, private: object) -> None:
            pending[0] -= 1
            if err < 0:
                errors.append(err)

        callback = _CALLBACK(done)  # kept alive until every reply is in
        deadline = time.monotonic() + self.timeout_ms / 1000
        with self.lock:
            self.lib.nfs_set_uid(_P(self.ctx), uid)
            self.lib.nfs_set_gid(_P(self.ctx), gid)
            while (pieces or pending[0]) and not errors:
                while pieces and pending[0] < WRITE_WINDOW:
                    at, piece = pieces.pop(0)
                    if self.lib.nfs_pwrite_async(_P(self.ctx), _P(fh), offset + at, len(piece),
                                                 piece, callback, None) != 0:
                        return -5  # EIO: could not even queue it
                    pending[0] += 1
                if time.monotonic() > deadline:
                    return -5  # EIO: the server stopped answering
                self._service()
        return errors[0] if errors else len(data)

    def _service(self) -> None:
        fd = self.lib.nfs_get_fd(_P(self.ctx))
        events = select.poll()
        events.register(fd, self.lib.nfs_which_events(_P(self.ctx)))
        ready = events.poll(100)
        self.lib.nfs_service(_P(self.ctx), ready[0][1] if ready else 0)

    def readlink(self, path: bytes, uid: int, gid: int) -> bytes | int:
        buf = ctypes.create_string_buffer(4096)
        ret = self.call("readlink", uid, gid, path, buf, 4096)
        return buf.value if ret == 0 else ret

    def utimes(self, path: bytes, atime: float, mtime: float, uid: int, gid: int) -> int:
        times = (Timeval * 2)(*(Timeval(int(t), int((t % 1) * 1e6)) for t in (atime, mtime)))
        return self.call("utimes", uid, gid, path, times)

    def listdir(self, path: bytes, uid: int, gid: int) -> list[str] | int:
        handle = _P()
        ret = self.call("opendir", uid, gid, path, ctypes.byref(handle))
        if ret != 0:
            return ret
        names = []
        with self.lock:
            while True:
                entry = self.lib.nfs_readdir(_P(self.ctx), handle)
                if not entry:
                    break
                names.append(entry.contents.name.decode(errors="surrogateescape"))
            self.lib.nfs_closedir(_P(self.ctx), handle)
        return names


def opened(share: Nfs, path: bytes, flags: int, mode: int, uid: int, gid: int,
           create: bool) -> tuple[Nfs, int] | int:
    """`path` open on a new context of the same share: (context, handle), or -errno."""
    try:
        own = Nfs(share.server, share.export, share.timeout_ms)
    except NfsError:
        return -5  # EIO: the server stopped answering
    fh = own.open(path, flags, mode, uid, gid, create)
    if fh <= 0:
        own.close()
        return fh
    return own, fh
