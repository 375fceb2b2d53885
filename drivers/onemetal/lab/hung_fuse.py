"""A FUSE mount that never answers: the lab's stand-in for a hard NFS mount whose server died.

Nothing serves /dev/fuse: the kernel's FUSE_INIT is never answered, so every later
request on the mount (statfs, readdir, lookup) waits, as a hard NFS mount waits for
its server. Unlike NFS, that wait is killable, and closing the device (the holder
process exiting) aborts the connection, so the lab can always clean up. Mounted with
mount(2) through ctypes (the fd has to stay open in this process), as root, in the
current mount namespace; `private_namespace()` first keeps it off the machine's.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def private_namespace() -> None:
    """This (single-threaded) process in a mount namespace of its own, nothing propagating out."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def mount(mount_point: str, source: str = "hung:/export", subtype: str = "hung") -> int:
    """Mount the hung file system on `mount_point` (fstype fuse.<subtype>); returns the device fd
    that keeps it hung: close it and `release` to end it."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    data = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    try:
        _check(_libc.mount(source.encode(), mount_point.encode(), f"fuse.{subtype}".encode(),
                           MS_NOSUID | MS_NODEV, data), f"mount fuse on {mount_point}")
    except OSError:
        os.close(fd)
        raise
    return fd


def release(fd: int, mount_point: str) -> None:
    os.close(fd)  # aborts the connection: waiting requests fail with ENOTCONN
    _check(_libc.umount2(mount_point.encode(), MNT_DETACH), f"umount {mount_point}")


HOLD = """\
import os, sys, time
sys.path.insert(0, {core!r})
from onemetal.lab import hung_fuse
fd = hung_fuse.mount({mount_point!r}, {source!r})
pid = os.fork()
if pid:
    print(pid)  # the holder: kill it to end the hang
    os._exit(0)
os.setsid()
null = os.open("/dev/null", os.O_RDWR)
for std in (0, 1, 2):
    os.dup2(null, std)
time.sleep({seconds!r})  # bounded: the mount ends with this process at the latest
hung_fuse.release(fd, {mount_point!r})
"""


def hold_script(core: str, mount_point: str, source: str, seconds: float) -> str:
    """`python3 -c` text that mounts the hung file system and leaves a detached holder process
    that keeps it hung for at most `seconds`; prints its pid (kill it to end the hang sooner)."""
    return HOLD.format(core=core, mount_point=mount_point, source=source, seconds=seconds)
