"""`onemetal mount ensure DATASTORE_DIR_OR_ID [--source S] [--immutable]`: the share mounted as its policy wants.

Run on the host (entry "mount-ensure") as oneadmin: mount goes through `sudo -n`
(OpenNebula's ONE_NFS rule), chattr through onemetal's own sudoers rule. Idempotent:
when the write-gate already opens for the directory, nothing is done. Everything
is checked before anything changes: the path, the source, an existing mount of
another share, a non-empty mount point. With --immutable the bare mount point is
made `chattr +i` first, so that if the share is ever lost, no write can land on
the host's own disk. Each mount attempt is bounded by storage.mount_timeout and
there are storage.mount_retries of them.
"""

from __future__ import annotations

import os
import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

    from onemetal.config import StorageConfig
    from onemetal.storage.policy import Policy

from onemetal.errors import InputError, OneMetalError
from onemetal.record import replace
from onemetal.run import CommandError, privileged
from onemetal.storage import mounts
from onemetal.storage.datastores import datastore_id, inside, policy_for, settings
from onemetal.storage.policy import problems

# How each profile's share is mounted (policy.fstypes say what mountinfo may then show).
MOUNT_TYPES = {"efs": "nfs4", "nfs": "nfs4", "lab": "fuse.nfs4"}
# server:/path, as mount.nfs4 takes it; no option separators, spaces or a leading dash.
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}:/[A-Za-z0-9._/-]{0,1024}$")
_RETRY_PAUSE = 1.0
USAGE = "expected DATASTORE_DIR_OR_ID [--source SERVER:/PATH] [--immutable]"


class MountError(OneMetalError):
    """The share could not be mounted within the attempts allowed."""


def _args(args: Sequence[str]) -> tuple[str, str | None, bool]:
    rest, source, immutable = list(args), None, False
    if "--immutable" in rest:
        rest.remove("--immutable")
        immutable = True
    if "--source" in rest:
        at = rest.index("--source")
        if at + 1 >= len(rest):
            raise InputError("--source needs SERVER:/PATH", "--source")
        source = rest.pop(at + 1)
        rest.pop(at)
    if len(rest) != 1:
        raise InputError(USAGE, "argv")
    return rest[0], source, immutable


def target(raw: str, cfg: StorageConfig) -> str:
    """The directory to mount: a datastore id, or a path at or under datastores_dir."""
    if raw.isdigit():
        return os.path.join(os.path.normpath(cfg.datastores_dir), str(int(raw)))
    return inside(raw, cfg.datastores_dir, "DATASTORE_DIR")


def _mount_argv(policy: Policy, source: str, path: str) -> list[str]:
    if policy.tls:  # efs-utils' helper: it starts the TLS tunnel and adds AWS's options itself
        return ["mount", "-t", "efs", "-o", "tls", source, path]
    opts = policy.mount_options
    return ["mount", "-t", MOUNT_TYPES[policy.name], *(["-o", opts] if opts else []), source, path]


def _bare(path: str) -> None:
    if not os.path.isdir(path):
        raise InputError(f"{path} is not a directory", "DATASTORE_DIR")
    if os.listdir(path):
        raise InputError(f"{path} is not empty: refusing to mount over files (they would be "
                         f"hidden, and written there while the share was missing)",
                         "DATASTORE_DIR")


def _immutable(path: str, cfg: StorageConfig) -> None:
    result = privileged(cfg.mount_timeout).run(["chattr", "+i", path], check=False)
    if result.returncode != 0:
        found = mounts.covering(mounts.read(), path)
        where = f"{found.mount_point} ({found.fstype})" if found else "its file system"
        raise MountError(f"chattr +i {path} failed on {where}: "
                         f"{result.stderr.strip() or 'exit ' + str(result.returncode)}"
                         f" (the file system may not support the immutable flag)", "--immutable")


def _attempts(argv: list[str], cfg: StorageConfig) -> None:
    runner, last = privileged(cfg.mount_timeout), ""
    for attempt in range(max(1, cfg.mount_retries)):
        if attempt:
            time.sleep(_RETRY_PAUSE)
        try:
            runner.run(argv)
            return
        except CommandError as exc:
            last = str(exc)
    raise MountError(f"could not mount {argv[-2]} on {argv[-1]} in {max(1, cfg.mount_retries)} "
                     f"attempts of at most {cfg.mount_timeout:g} s: {last}", "mount")


def ensure(raw: str, source: str | None, immutable: bool, cfg: StorageConfig) -> str:
    path = target(raw, cfg)
    policy = policy_for(datastore_id(path, cfg), cfg)
    if not policy.needs_mount:
        return f"{path}: profile {policy.name} needs no mount"
    source = source or cfg.source
    if not source:
        raise InputError("no share given: pass --source SERVER:/PATH or set storage.source",
                         "--source")
    if not _SOURCE.match(source):
        raise InputError(f"{source!r} is not SERVER:/PATH", "--source")
    policy = replace(policy, source=source)
    found = mounts.covering(mounts.read(), path)
    if not problems(found, path, policy):
        return f"{path}: already on {source} ({found.fstype if found else '?'}), nothing to do"
    if found is not None and found.mount_point == path:
        raise MountError(f"{path} already holds another mount: "
                         f"{'; '.join(problems(found, path, policy))}", "DATASTORE_DIR")
    if not os.path.exists(path):
        os.makedirs(path)
    _bare(path)
    if immutable:
        _immutable(path, cfg)
    _attempts(_mount_argv(policy, source, path), cfg)
    after = mounts.covering(mounts.read(), path)
    left = problems(after, path, policy)
    if left:
        raise MountError(f"mounted {source} on {path}, yet the write-gate stays shut: "
                         f"{'; '.join(left)}", "mount")
    return f"{path}: mounted {source} ({after.fstype if after else '?'})"


def entry(args: Sequence[str], stdin: TextIO) -> str:
    raw, source, immutable = _args(args)
    return ensure(raw, source, immutable, settings())
