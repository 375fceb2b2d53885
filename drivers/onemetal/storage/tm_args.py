"""The arguments oned gives a transfer driver action, checked before anything runs.

oned writes `host:path` words (`fe:/var/lib/one//datastores/1/abc`), VM and
datastore ids. The host part becomes an ssh destination and the path is used on a
host, so both are refused unless plainly what oned writes: a host name that cannot
be read as an ssh option, a path under datastores_dir without `..` (datastores.inside).

>>> split("one-1:/var/lib/one//datastores/0/42/disk.0", "DST")
('one-1', '/var/lib/one//datastores/0/42/disk.0')
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.config import StorageConfig

from onemetal.errors import InputError
from onemetal.record import value
from onemetal.storage.datastores import inside

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}\Z")
_DISK = re.compile(r"disk\.(\d{1,6})\Z")


@value
class Target:
    """Where a VM file lives: `host` holds `path` in VM directory `vm_dir` of system DS `ds_id`."""

    host: str
    path: str
    vm_dir: str
    ds_id: int
    vm_id: int


def split(word: str, field: str) -> tuple[str, str]:
    """`host:path` as (host, path); the host must be a plain host name or address."""
    host, colon, path = word.partition(":")
    if not colon:
        raise InputError(f"{word!r} is not host:path", field)
    if not _HOST.match(host):
        raise InputError(f"{host!r} is not a host name", field)
    return host, path


def number(word: str, field: str) -> int:
    if not word.isascii() or not word.isdigit() or len(word) > 9:
        raise InputError(f"{word!r} is not an id", field)
    return int(word)


def datastore_path(word: str, cfg: StorageConfig, field: str) -> tuple[str, str]:
    """`host:path` with the path checked to lie under datastores_dir."""
    host, raw = split(word, field)
    return host, inside(raw, cfg.datastores_dir, field)


def vm_file(word: str, cfg: StorageConfig, field: str, vm_id: int | None = None) -> Target:
    """`host:<datastores_dir>/<ds>/<vmid>[/<file>]`: a VM directory or a file directly in it."""
    host, raw = split(word, field)
    return vm_path(raw, cfg, field, vm_id, host)


def vm_path(raw: str, cfg: StorageConfig, field: str, vm_id: int | None = None,
            host: str = "") -> Target:
    """`<datastores_dir>/<ds>/<vmid>[/<file>]`, as the host side gets it."""
    path = inside(raw, cfg.datastores_dir, field)
    rest = os.path.relpath(path, os.path.normpath(cfg.datastores_dir)).split("/")
    if len(rest) not in (2, 3) or not rest[0].isdigit() or not rest[1].isdigit():
        raise InputError(f"{path} is not <datastores_dir>/<ds id>/<vm id>[/<file>]", field)
    if vm_id is not None and int(rest[1]) != vm_id:
        raise InputError(f"{path} is not in the directory of VM {vm_id}", field)
    vm_dir = os.path.join(os.path.normpath(cfg.datastores_dir), rest[0], rest[1])
    return Target(host=host, path=path, vm_dir=vm_dir, ds_id=int(rest[0]), vm_id=int(rest[1]))


def disk_file(word: str, cfg: StorageConfig, field: str, vm_id: int) -> Target:
    """A VM's `disk.<i>` file, as clone, ln, mkimage and context write."""
    host, raw = split(word, field)
    return disk_path(raw, cfg, field, vm_id, host)


def disk_path(raw: str, cfg: StorageConfig, field: str, vm_id: int, host: str = "") -> Target:
    target = vm_path(raw, cfg, field, vm_id, host)
    if target.path == target.vm_dir or not _DISK.match(os.path.basename(target.path)):
        raise InputError(f"{target.path} is not a disk.<id> file of VM {vm_id}", field)
    return target


def disk_id(target: Target) -> int:
    match = _DISK.match(os.path.basename(target.path))
    assert match, target.path
    return int(match.group(1))


def new_disk_format(word: str) -> str:
    """What mkimage makes: raw, qcow2, or swap (raw with a swap signature)."""
    if word not in ("raw", "qcow2", "swap"):
        raise InputError(f"{word!r} is not raw, qcow2 or swap", "DISK/FORMAT")
    return word


def expect(args: list[str], names: tuple[str, ...], action: str) -> None:
    if len(args) != len(names):
        raise InputError(f"takes {len(names)} arguments ({' '.join(names)}), got {len(args)}",
                         action)
