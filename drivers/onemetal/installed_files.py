"""The files an install owns, as a reconcile Resource: destination path -> (sha256, mode).

Sources come from the checkout, which is trusted; destinations are read, written
and removed only through onemetal.safefiles, since they lie in trees others own.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Mapping, Sequence

from onemetal import safefiles
from onemetal.reconcile import Plan

FileState = tuple[str, int]  # (sha256, mode)

# A hook runs on the frontend with the interpreter onemetal is installed in (pyone is there).
_ENV_PYTHON = b"#!/usr/bin/env python3\n"


def state(data: bytes, mode: int) -> FileState:
    return hashlib.sha256(data).hexdigest()[:16], mode


def file_state(path: str, roots: Sequence[str]) -> FileState | None:
    found = safefiles.read(path, roots)
    return None if found is None else state(*found)


def content(src: str, dest: str) -> bytes:
    """What `dest` must hold: the source, with a hook's interpreter line made explicit."""
    with open(src, "rb") as f:
        data = f.read()
    if f"{os.sep}hooks{os.sep}onemetal{os.sep}" in dest and data.startswith(_ENV_PYTHON):
        data = f"#!{sys.executable}\n".encode() + data[len(_ENV_PYTHON):]
    if dest.endswith(".service"):
        # The unit runs the console scripts installed next to this interpreter.
        data = data.replace(b"@BIN@", os.path.dirname(sys.executable).encode())
    return data


def source_mode(path: str) -> int:
    with open(path, "rb") as f:
        return 0o755 if f.read(2) == b"#!" else 0o644


class InstalledFiles:
    """`sources` (destination -> source) written below `roots`; `recorded` (what an earlier
    install wrote) is read too, so that a file no longer shipped is removed."""

    def __init__(self, subject: str, sources: Mapping[str, str], roots: Sequence[str],
                 recorded: Sequence[str] = ()) -> None:
        self.subject = subject
        self.sources = sources
        self.roots = roots
        self.recorded = recorded

    def mode_of(self, dest: str) -> int:
        return source_mode(self.sources[dest])

    def want(self) -> dict[str, FileState]:
        return {dest: state(content(src, dest), self.mode_of(dest))
                for dest, src in self.sources.items()}

    def read(self) -> Mapping[str, FileState]:
        """Also refuses, before anything changes, a link at or above any of the paths."""
        paths = sorted(set(self.sources) | set(self.recorded))
        states = {p: file_state(p, self.roots) for p in paths}
        return {p: s for p, s in states.items() if s is not None}

    def check(self, plan: Plan[str, FileState]) -> None:
        """What a dry run can verify without writing: nothing, for plain files."""

    def apply(self, plan: Plan[str, FileState]) -> None:
        self.write([*plan.add, *plan.change])
        for dest in plan.remove:
            safefiles.remove(dest, self.roots)

    def write(self, dests: Sequence[str]) -> None:
        for dest in dests:
            safefiles.write(dest, content(self.sources[dest], dest), self.roots, self.mode_of(dest))
