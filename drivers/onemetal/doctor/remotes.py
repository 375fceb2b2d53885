"""Section 1: the remotes tree, the same files with the same digests on the frontend and each host.

The frontend digests the files its manifest lists under the remotes directory (what
`onehost sync` copies); a host digests its copy under <remote_dir> and compares.
"""

from __future__ import annotations

import hashlib
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

from onemetal.doctor_report import FAIL, OK, Check
from onemetal.errors import InputError

SYNC = "run `onehost sync --force` on the frontend"
SHOWN = 3  # file names a detail lists before "..."


def digest(path: str) -> str | None:
    """sha256 of a regular file (links followed, as rsync -L copied them); None when absent."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def relative(rel: object, field: str) -> str:
    """A path the frontend sent, checked to stay inside the remotes tree."""
    if (not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel
            or ".." in rel.split("/")):
        raise InputError(f"{rel!r} is not a path inside the remotes tree", field)
    return rel


def digests(root: str, rels: list[str]) -> dict[str, str | None]:
    return {rel: digest(os.path.join(root, rel)) for rel in rels}


def _names(paths: list[str]) -> str:
    shown = ", ".join(sorted(paths)[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def compare(root: str, want: Mapping[str, str]) -> Check:
    """This machine's copy under `root` against the frontend's digests."""
    have = digests(root, sorted(want))
    missing = [r for r, d in have.items() if d is None]
    differ = [r for r, d in have.items() if d is not None and d != want[r]]
    if not want:
        return Check("remotes in sync", FAIL, "the frontend sent no file to compare",
                     "run `onemetal install` on the frontend")
    if missing or differ:
        parts = [f"{len(missing)} missing ({_names(missing)})"] if missing else []
        parts += [f"{len(differ)} differ ({_names(differ)})"] if differ else []
        return Check("remotes in sync", FAIL, f"{root}: {'; '.join(parts)}", SYNC)
    return Check("remotes in sync", OK, f"{root}: {len(want)} files, same digests as the frontend")
