"""oned's TM MAD (src/tm_mad/one_tm.rb), for the lab's oned double.

A transfer file is one action per line, `<OP> <tm_mad> <args...>`; each runs on the
frontend, as oneadmin from /var/lib/one, as remotes/tm/<tm_mad>/<op lower-case> with
the arguments shell-escaped; the first failure ends the transfer and its message is
the reply's. Lines are split on whitespace (Ruby's `split(' ')`); empty and `#` lines
are skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Sequence

from onemetal.lab.frontend_host import REMOTES, frontend
from onemetal.lab.lab import Lab
from onemetal.lab.oned import error_message_7x
from onemetal.run import Result

_SKIP = re.compile(r"^\s*(#|$)")
# The MAD's LocalCommand has no timeout; here every wait is bounded.
TIMEOUT = 120.0


@dataclass(frozen=True)
class TransferResult:
    ok: bool
    reply: str                          # what the MAD writes to oned: TRANSFER SUCCESS|FAILURE ...
    lines: list[tuple[str, Result]]


def run_local(lab: Lab, path: str, args: Sequence[str], stdin: str | None,
              timeout: float = TIMEOUT) -> Result:
    """A MAD's LocalCommand: on the frontend as oneadmin, stdin written whole then closed
    (empty when there is none, as capture3 does)."""
    return frontend(lab).oneadmin.run([path, *args], input=stdin or "", timeout=timeout,
                                      check=False)


def failed(argv: Sequence[str], message: str) -> Result:
    """A failure the MAD answers itself, without running anything."""
    return Result(argv=tuple(argv), returncode=-1, stdout="", stderr=message + "\n", seconds=0.0)


def mad_info(result: Result) -> str:
    """The info of the MAD's reply (get_info_from_execution, OpenNebula 7.x)."""
    text = result.stdout.strip() if result.returncode == 0 else error_message_7x(result.stderr)
    return text or "-"


def run_tm(lab: Lab, action: str, args: Sequence[str], stdin: str | None = None) -> Result:
    """do_transfer_action: `args` are the words after the action, the TM_MAD first."""
    if not args:
        return failed([action], "Transfer Driver '' not available")
    tm_mad, rest = args[0], list(args[1:])
    base = f"{REMOTES}/tm/{tm_mad}"
    if not os.path.isdir(frontend(lab).path(base)):
        return failed([action, *args], f"Transfer Driver '{tm_mad}' not available")
    path = f"{base}/{action.lower()}"
    if not os.path.exists(frontend(lab).path(path)):
        # "clone.ssh" (a TM_MAD_SYSTEM suffix) falls back to "clone": the MAD's greedy
        # /(.*)\.(.*)/ cuts at the last dot
        if "." not in action:
            return failed([path, *rest], f"Driver path '{path}' does not exists")
        short = f"{base}/{action.lower().rsplit('.', 1)[0]}"
        if not os.path.exists(frontend(lab).path(short)):
            return failed([path, *rest], f"Driver path '{path}' nor '{short}' exists")
        path = short
    return run_local(lab, path, rest, stdin)


def transfer(lab: Lab, vm_id: int, text: str) -> TransferResult:
    """ACTION TRANSFER of a transfer file's text: stops at the first failing line."""
    lines: list[tuple[str, Result]] = []
    for line in text.splitlines():
        if _SKIP.match(line):
            continue
        op, *args = line.split()
        result = run_tm(lab, op, args)
        lines.append((line, result))
        if result.returncode != 0:
            return TransferResult(False, f"TRANSFER FAILURE {vm_id} {mad_info(result)}", lines)
    return TransferResult(True, f"TRANSFER SUCCESS {vm_id} -", lines)
