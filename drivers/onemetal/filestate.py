"""Host-local state files as a reconcile Resource (peer lists, records of what a driver did).

Each file starts with an ownership header; files without it are never read,
changed or removed. Each file is replaced atomically (write, fsync, rename), so
a reader sees the old or the new content, and an apply killed between two files
converges when run again.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

from onemetal.opennebula import values
from onemetal.reconcile import OWNER, Plan
from onemetal.record import value

_TMP_SUFFIX = ".onemetal-tmp"


@value
class OwnedFiles:
    """Files in `directory` that belong to `tag` (e.g. "mesh"), keyed by file name."""

    directory: str
    tag: str

    @property
    def subject(self) -> str:
        return f"files:{self.tag}@{self.directory}"

    @property
    def header(self) -> str:
        return f"# owner: {OWNER}:{self.tag}\n"

    def read(self) -> Mapping[str, str]:
        found: dict[str, str] = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        for name in sorted(names):
            if name.startswith("."):
                continue
            try:
                with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                    text = f.read()
            except (IsADirectoryError, UnicodeDecodeError):
                continue
            if text.startswith(self.header):
                found[name] = text[len(self.header):]
        return found

    def _write(self, name: str, content: str) -> None:
        values.name(name, "file name")
        final = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f".{name}{_TMP_SUFFIX}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.header + content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def _sweep_temporaries(self) -> None:
        for name in os.listdir(self.directory):
            if name.startswith(".") and name.endswith(_TMP_SUFFIX):
                os.unlink(os.path.join(self.directory, name))

    def apply(self, plan: Plan[str, str]) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self._sweep_temporaries()  # left by an apply that was killed
        for name, content in plan.add.items():
            self._write(name, content)
        for name, (_, content) in plan.change.items():
            self._write(name, content)
        for name in plan.remove:
            try:
                os.unlink(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
