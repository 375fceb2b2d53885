"""Which datastore a path belongs to, its mount policy from onemetal.conf, and the write-gate.

Every DS, TM and VMM action that writes under a datastore calls `gate(path)` first,
on the machine that writes (the frontend for DS actions, the host for TM and VMM
ones): the gate reads that machine's mountinfo only, so it never blocks on a hung
share, and it refuses before anything is created. Paths are checked lexically
(`inside`): resolving them would touch the share.

>>> inside("/var/lib/one//datastores/1/abc", "/var/lib/one/datastores", "IMAGE/SOURCE")
'/var/lib/one/datastores/1/abc'
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.config import StorageConfig
    from onemetal.storage.mounts import Mount

from onemetal.errors import ConfigError, InputError
from onemetal.storage import policy as policies


def inside(raw: str, base: str, field: str) -> str:
    """`raw` as a normalized absolute path under `base`, or InputError naming `field`.

    Refuses what could leave the datastore: relative paths, `..` components, NUL and
    newlines (a path is written into shell-free argv and oned's reply lines)."""
    if not raw or not raw.startswith("/"):
        raise InputError(f"{raw!r} is not an absolute path", field)
    if any(c in raw for c in "\0\n\r"):
        raise InputError("holds a NUL or newline character", field)
    if ".." in raw.split("/"):
        raise InputError(f"{raw!r} holds a '..' component", field)
    path, root = os.path.normpath(raw), os.path.normpath(base)
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        raise InputError(f"{path} is outside {root}", field)
    return path


def datastore_id(path: str, cfg: StorageConfig) -> int | None:
    """The datastore id of a path under datastores_dir (`<dir>/<id>/...`), else None."""
    root, path = os.path.normpath(cfg.datastores_dir), os.path.normpath(path)
    if not path.startswith(root.rstrip("/") + "/"):
        return None
    head = path[len(root):].lstrip("/").split("/", 1)[0]
    return int(head) if head.isdigit() else None


def _options(entries: tuple) -> tuple[tuple[str, str | None], ...]:
    out = []
    for entry in entries:
        key, eq, val = str(entry).partition("=")
        if not key or (eq and not val):
            raise ConfigError(f"{entry!r} is not 'key=value' or 'flag'", "storage.nfs_options")
        out.append((key, val if eq else None))
    return tuple(out)


def profile_name(ds_id: int | None, cfg: StorageConfig) -> str:
    for entry in cfg.datastore_profiles:
        key, eq, name = str(entry).partition("=")
        if not (eq and key.strip().isdigit() and name.strip()):
            raise ConfigError(f"{entry!r} is not 'ID=PROFILE'", "storage.datastore_profiles")
        if ds_id is not None and int(key) == ds_id:
            return name.strip()
    return cfg.profile


def policy_for(ds_id: int | None, cfg: StorageConfig) -> policies.Policy:
    name = profile_name(ds_id, cfg)
    options = _options(cfg.nfs_options) if name == "nfs" else None
    return policies.profile(name, source=cfg.source, tls=cfg.tls, options=options)


def settings() -> StorageConfig:
    from onemetal import config

    return config.load().storage


def gate(path: str, cfg: StorageConfig | None = None,
         mounts: list[Mount] | None = None) -> Mount | None:
    """Open the write-gate for `path` (see storage/policy.py), or raise WriteGateError."""
    cfg = cfg or settings()
    return policies.write_gate(path, policy_for(datastore_id(path, cfg), cfg), mounts)
