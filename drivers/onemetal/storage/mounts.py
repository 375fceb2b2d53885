"""Which mount holds a datastore path, and whether it is the share the datastore's policy wants.

Read from /proc/self/mountinfo only: nothing here touches the mounted file system,
so a hung NFS server cannot hang the check (statvfs and listings go through
storage/probe.py, in a child with a deadline).

A mountinfo line (proc(5)):

    47 23 0:44 / /var/lib/one/datastores rw,relatime shared:25 - nfs4 fs-1.efs.us-east-1.amazonaws.com:/ rw,vers=4.1,...

mount id, parent id, device, root, mount point, per-mount options, optional
fields, "-", file system type, source, super-block options. Spaces, tabs,
newlines and backslashes in paths are written as octal escapes (\\040 ...).

>>> m = parse_line(r"47 23 0:44 / /mnt/my\\040share rw - nfs4 srv:/x rw,vers=4.1,hard")
>>> m.mount_point, m.source, m.options["vers"]
('/mnt/my share', 'srv:/x', '4.1')
"""

from __future__ import annotations

import os
import re
from onemetal.errors import InputError
from onemetal.record import field, value

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPE = re.compile(r"\\([0-7]{3})")


@value
class Mount:
    mount_id: int
    mount_point: str
    fstype: str
    source: str
    # Per-mount and super-block options together; a flag maps to "".
    options: dict[str, str] = field(default_factory=dict, compare=False)


def unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def _options(*groups: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for group in groups:
        for item in group.split(","):
            if item:
                key, _, value = item.partition("=")
                out[key] = value
    return out


def parse_line(line: str) -> Mount:
    words = line.split()
    try:
        dash = words.index("-", 6)
        return Mount(mount_id=int(words[0]), mount_point=unescape(words[4]),
                     fstype=words[dash + 1], source=unescape(words[dash + 2]),
                     options=_options(words[5], words[dash + 3] if len(words) > dash + 3 else ""))
    except (ValueError, IndexError):
        raise InputError(f"not a mountinfo line: {line[:120]!r}", "mountinfo") from None


def parse(text: str) -> list[Mount]:
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def read(path: str = MOUNTINFO) -> list[Mount]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse(f.read())


def within(path: str, mount_point: str) -> bool:
    """Whether the absolute, normalized `path` is `mount_point` or below it."""
    return mount_point == "/" or path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def covering(mounts: list[Mount], path: str) -> Mount | None:
    """The mount that holds `path`: the deepest mount point above it; of mounts stacked on the
    same point, the last one listed (the one on top)."""
    path = os.path.normpath(path)
    best: Mount | None = None
    for mount in mounts:
        if within(path, mount.mount_point) and (
                best is None or len(mount.mount_point) >= len(best.mount_point)):
            best = mount
    return best
