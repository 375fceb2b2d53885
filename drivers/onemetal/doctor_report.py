"""The results `onemetal doctor` sections share: one (name, status, detail, remedy) per check.

Each section (storage now; network, NAT, ... later) returns a list of `Check`; the
report prints them the same way and the command exits non-zero on any FAIL. A host
entry returns them as JSON (`dumps`) so the frontend prints a host's report like its own.

>>> checks = [Check("ds 1 mount", OK, "on /mnt"), Check("ds 1 space", FAIL, "no answer", "mount it")]
>>> print(text(checks))
OK    ds 1 mount: on /mnt
FAIL  ds 1 space: no answer
      remedy: mount it
>>> failed(loads(dumps(checks)))
True
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from onemetal.errors import InputError
from onemetal.record import asdict, value

OK, WARN, FAIL = "OK", "WARN", "FAIL"
STATUSES = (OK, WARN, FAIL)


@value
class Check:
    name: str
    status: str   # OK, WARN or FAIL
    detail: str
    remedy: str = ""   # what to do about a WARN or FAIL, as a command where there is one


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def text(checks: Sequence[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{c.status:<5} {c.name}: {c.detail}")
        if c.remedy:
            lines.append(f"      remedy: {c.remedy}")
    return "\n".join(lines)


def dumps(checks: Sequence[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=1)


def loads(data: str) -> list[Check]:
    """Checks from `dumps` (a host's answer): refuses anything else, naming what is wrong."""
    try:
        raw = json.loads(data)
        checks = [Check(str(r["name"]), str(r["status"]), str(r["detail"]), str(r.get("remedy", "")))
                  for r in raw]
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"not a doctor report: {exc}", "doctor report") from None
    bad = [c.status for c in checks if c.status not in STATUSES]
    if bad:
        raise InputError(f"unknown status {bad[0]!r}", "doctor report")
    return checks


def from_host(runner: object, entry: str, timeout: float = 120.0) -> list[Check]:
    """A doctor section's checks as a host reports them (an SshRunner running `entry`);
    a host that cannot run it raises CommandError with the host's reason."""
    return loads(runner.run_entry(entry, timeout=timeout).stdout)  # type: ignore[attr-defined]
