"""Where onemetal keeps state, owned by oneadmin whoever creates it first.

oned runs the drivers and hooks as oneadmin, while an operator may run `onenat` or
a timer as root first: a directory or store that root creates must still be
oneadmin's afterwards, or every later action fails. Each failure names the path
and the command that fixes it.
"""

from __future__ import annotations

import os

from onemetal.errors import OneMetalError

SERVICE_USER = "oneadmin"


def service_ids() -> tuple[int, int] | None:
    """uid and gid of oneadmin, or None on a machine without it (a test run, a bare frontend)."""
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _give_to_service_user(path: str) -> None:
    """As root, hand what we just made to oneadmin; as anyone else it is already ours."""
    ids = service_ids()
    if os.geteuid() == 0 and ids is not None:
        os.chown(path, *ids, follow_symlinks=False)


def private_dir(path: str, field: str) -> str:
    """`path` as a directory only oneadmin may enter (0700), created when missing."""
    if os.path.isdir(path):
        return path
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        return path  # another action made it first
    except PermissionError:
        raise OneMetalError(
            f"cannot create {path} (permission denied): as root, run "
            f"`install -d -m 0700 -o {SERVICE_USER} -g {SERVICE_USER} {path}`", field) from None
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    _give_to_service_user(path)
    return path


def private_file(path: str, field: str) -> str:
    """`path` as a file only oneadmin may read (0600), created empty when missing."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return path
    except PermissionError:
        raise OneMetalError(f"cannot create {path} (permission denied): run this as "
                            f"{SERVICE_USER} or root", field) from None
    os.close(fd)
    _give_to_service_user(path)
    return path
