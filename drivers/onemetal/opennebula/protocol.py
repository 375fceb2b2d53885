"""How a driver answers oned: exit code, stdout, and stderr that 6.x and 7.x both read.

On failure stderr carries `ERROR: <action>: <reason>` (7.x turns it into a line of
the VM log), then exactly one plain line with the reason wrapped in the marker
lines OpenNebula up to 6.0 extracts. 6.2-6.10 show the whole stderr, so it stays
short. Success: exit 0, and stdout holds only the result (deploy prints the deploy id).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TextIO

from onemetal.errors import OneMetalError

ERROR_BEGIN = "ERROR MESSAGE --8<------"
ERROR_END = "ERROR MESSAGE ------>8--"


def _one_line(message: str) -> str:
    return " ".join(message.split())


def log(level: str, action: str, message: str, stream: TextIO | None = None) -> None:
    """A line oned copies into the VM log (level: INFO, ERROR, WARN, DEBUG)."""
    out = stream or sys.stderr
    out.write(f"{level}: {action}: {_one_line(message)}\n")
    out.flush()


def report_error(action: str, reason: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    line = _one_line(reason)
    out.write(f"ERROR: {action}: {line}\n{ERROR_BEGIN}\n{line}\n{ERROR_END}\n")
    out.flush()


def run_action(action: str, body: Callable[[], str | None], *,
               stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one driver action and translate its outcome into OpenNebula's protocol.

    `body` returns what goes to stdout (or None). Returns the exit code."""
    out = stdout or sys.stdout
    try:
        result = body()
    except OneMetalError as exc:
        report_error(action, str(exc), stderr)
        return 1
    except ModuleNotFoundError as exc:
        from onemetal.deps import missing_module

        report_error(action, missing_module(exc.name or "?"), stderr)
        return 1
    except KeyboardInterrupt:
        report_error(action, "interrupted", stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the protocol boundary: oned must get a reason, not a traceback
        report_error(action, f"internal error: {type(exc).__name__}: {exc}", stderr)
        return 1
    if result:
        out.write(result if result.endswith("\n") else result + "\n")
        out.flush()
    return 0
