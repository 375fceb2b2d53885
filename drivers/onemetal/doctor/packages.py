"""Section 2: the host packages of the declared table (deps.py), as this host's own view.

A tool counts when an executable of that name is on PATH or in the sbin directories
(oneadmin's PATH lacks them, sudo finds them there); a module when /usr/bin/python3 (this
interpreter, run isolated) can import it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

from onemetal.deps import HOST_MODULES, HOST_TOOLS
from onemetal.doctor_report import FAIL, OK, Check

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")


def tool_path(tool: str) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(tool, path=search)


def _missing(packages: dict[str, list[str]], what: str) -> list[Check]:
    return [Check(f"package {pkg}", FAIL, f"{what} {', '.join(names)} not found",
                  f"apt-get install {pkg}") for pkg, names in sorted(packages.items())]


def run() -> list[Check]:
    tools: dict[str, list[str]] = {}
    for tool, pkg in HOST_TOOLS.items():
        if tool_path(tool) is None:
            tools.setdefault(pkg, []).append(tool)
    modules: dict[str, list[str]] = {}
    for module, pkg in HOST_MODULES.items():
        if importlib.util.find_spec(module) is None:
            modules.setdefault(pkg, []).append(module)
    checks = _missing(tools, "tool") + _missing(modules, "python module")
    if not checks:
        checks.append(Check("host packages", OK, f"{len(HOST_TOOLS)} tools and "
                                                 f"{len(HOST_MODULES)} python modules found"))
    return checks
