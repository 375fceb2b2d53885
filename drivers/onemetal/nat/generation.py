"""The store generation a gateway push carries, and the last one this gateway applied.

Two changes on the frontend push concurrently and may reach the gateway in either
order; each push is a whole snapshot, so applying the older one last would undo the
newer. The store's generation grows with every change: nat-apply refuses a push older
than the last it applied and takes an equal one as a repair. The last generation lives
in <state_dir>/nat/generation (an owned state file, replaced atomically), written
under the net lock before the first change, so a push that fails halfway still
fences off the older ones; the next push of the same generation finishes it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from onemetal.errors import InputError, OneMetalError
from onemetal.filestate import OwnedFiles
from onemetal.reconcile import diff

FIELD = "stdin/generation"
FILE = "generation"


def parse(data: dict[str, Any]) -> int:
    """The pushed generation: an integer >= 0 (JSON true is not one)."""
    if "generation" not in data:
        raise InputError("is missing: the frontend's onenat is older than this gateway's "
                         "onemetal; upgrade it", FIELD)
    value = data["generation"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{value!r} is not an integer", FIELD)
    if value < 0:
        raise InputError(f"{value} is out of range (>= 0)", FIELD)
    return value


def _files(state_dir: str) -> OwnedFiles:
    return OwnedFiles(os.path.join(state_dir, "nat"), "nat")


def applied(state_dir: str) -> int:
    """The last generation applied here; 0 before the first."""
    text = _files(state_dir).read().get(FILE)
    if text is None:
        return 0
    try:
        return int(text.strip())
    except ValueError:
        path = os.path.join(state_dir, "nat", FILE)
        raise OneMetalError(f"{text.strip()[:40]!r} is not a generation: remove the file to "
                            "accept the next push", path) from None


def check(pushed: int, last: int) -> None:
    if pushed < last:
        raise InputError(f"generation {pushed} is older than the applied {last}: a newer "
                         "push was applied first; nothing was applied", FIELD)


def record(state_dir: str, pushed: int, last: int) -> None:
    """Keep `pushed` as the applied generation (only when it is newer)."""
    if pushed > last:
        files = _files(state_dir)
        files.apply(diff(files.subject, {FILE: f"{pushed}\n"}, files.read()))
