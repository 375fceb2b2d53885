"""The two edits install makes to oned.conf: the managed block of etc/oned.d/ fragments, and
`onemetal` in the TM_MAD/DATASTORE_MAD driver lists (onemetal.oned_lists). Both are computed as
text first, so that a refusal of either leaves the file as it was."""

from __future__ import annotations

from typing import Sequence

from onemetal import oned_lists, safefiles
from onemetal.safefiles import InstallError

BEGIN = "# BEGIN onemetal: managed by `onemetal install`, edit etc/oned.d/ instead"
END = "# END onemetal"


def read(path: str, etc: str) -> str:
    found = safefiles.read(path, (etc,))
    if found is None:
        raise InstallError("not found, cannot apply the fragments", path)
    return found[0].decode("utf-8")


def with_block(text: str, block: str) -> str:
    """`text` with our managed block replaced (or appended, or removed when `block` is empty)."""
    start, end = text.find(BEGIN), text.find(END)
    if (start < 0) != (end < 0) or end < start:
        raise InstallError("has a broken onemetal block (BEGIN without END); fix it by hand", "oned.conf")
    if start >= 0:
        text = text[:start].rstrip("\n") + "\n" + text[end + len(END):].lstrip("\n")
    if block:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{block.rstrip()}\n{END}\n"
    return text if text.strip() else ""


def installed(current: str, fragments: str, recorded: Sequence[str],
              out: list[str]) -> tuple[str, list[str]]:
    """(oned.conf with both edits, the lists onemetal is in because an install put it there)."""
    extended, added = oned_lists.with_driver(current)
    updated = with_block(extended, fragments)
    out.extend(oned_lists.describe(added, "add"))
    out.append(f"~ oned.conf: onemetal block {'updated' if updated != extended else 'unchanged'}")
    # A list that already named onemetal stays the operator's, unless an earlier install added it.
    return updated, [k for k in oned_lists.KEYS if k in recorded or k in added]


def uninstalled(current: str, recorded: Sequence[str], out: list[str]) -> str:
    """oned.conf without the block and without the names install added to the lists."""
    # No oned.conf left (removed by hand): nothing to take out, and no reason to stop uninstall.
    shortened, removed = oned_lists.without_driver(current, recorded) if recorded and current \
        else (current, [])
    out.extend(oned_lists.describe(removed, "remove"))
    if BEGIN in shortened:
        out.append("~ oned.conf: onemetal block removed")
        return with_block(shortened, "")
    return shortened
