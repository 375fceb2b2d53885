"""Section 3: onemetal's sudoers fragment installed and valid, as oneadmin sees it.

oneadmin cannot read /etc/sudoers.d, so the check is what sudo itself lists for it
(`sudo -n -l`, no prompt): a fragment sudo refused to parse, or one never installed,
lists none of its rules.
"""

from __future__ import annotations

from onemetal.doctor_report import FAIL, OK, Check
from onemetal.errors import OneMetalError
from onemetal.run import Runner

FRAGMENT = "/etc/sudoers.d/onemetal"
# A command of the fragment's gateway rule, as `sudo -l` prints it (no other rule file has it).
MARKER = "dev onegw[0-9]{1,10}$"
REMEDY = (f"as root: onemetal install --sudoers-dir /etc/sudoers.d (writes {FRAGMENT}, mode 0440), "
          f"then visudo -cf {FRAGMENT}")


def run(runner: Runner | None = None, timeout: float = 10.0) -> list[Check]:
    try:
        result = (runner or Runner()).run(["sudo", "-n", "-l"], check=False, timeout=timeout)
    except OneMetalError as exc:
        return [Check("sudoers", FAIL, f"sudo -n -l: {exc}", REMEDY)]
    if result.returncode != 0:
        why = result.stderr.strip().splitlines()[:1] or [f"exit {result.returncode}"]
        return [Check("sudoers", FAIL, f"sudo -n -l failed: {why[0]}", REMEDY)]
    if MARKER not in result.stdout:
        return [Check("sudoers", FAIL, f"sudo -n -l lists none of {FRAGMENT}'s rules", REMEDY)]
    return [Check("sudoers", OK, f"sudo -n -l lists {FRAGMENT}'s rules")]
