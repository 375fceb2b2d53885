"""A host missing a tool of deps.py's table, as a host without its Debian package is.

The tool is covered, in that host's own mount namespace only, by an empty file that
is not executable: the host sees no such command, the machine and other hosts still do.
"""

from __future__ import annotations

import os

from onemetal.doctor.packages import tool_path
from onemetal.lab.host import LabHost
from onemetal.lab.host import LabError


def _where(tool: str) -> str:
    path = tool_path(tool)  # as the machine (and so every host, before hiding) finds it
    if path is None:
        raise LabError(f"{tool}: not installed on this machine, nothing to hide")
    return os.path.realpath(path)


def hide(host: LabHost, tool: str) -> str:
    """Cover `tool` in `host`; returns the path covered."""
    path = _where(tool)
    empty = os.path.join(host.workdir, f"hidden-{tool}")
    open(empty, "w").close()
    host.run(["mount", "--bind", empty, path])
    return path


def unhide(host: LabHost, tool: str) -> None:
    """Uncover `tool` again: what `apt-get install` of its package does for the host."""
    host.run(["umount", _where(tool)])
