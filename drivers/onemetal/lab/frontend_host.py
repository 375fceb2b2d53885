"""The lab's frontend as a host: onemetal installed with its own CLI, remotes synced as oned does.

Used with `Lab(frontend_host=True)`. The admin CLIs (`onemetal`, `onenat`) run
as root inside the frontend's namespaces with this interpreter (pyone and click
are the frontend's pip packages, not Debian's); the DS and TM actions run as
oneadmin under the remotes' own /usr/bin/python3 (lab.host.LabHost.oneadmin).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

from onemetal.lab.host import LabHost
from onemetal.lab.lab import Lab, LabError
from onemetal.run import Result, Runner

REMOTES = "/var/lib/one/remotes"
REMOTE_DIR = "/var/tmp/one"
CONF = "/etc/one/onemetal.conf"
# The systemd units install writes: somewhere private to the frontend, never the machine's.
SYSTEMD_DIR = "/etc/one/lab-systemd"
# OpenNebula's shipped oned.conf, when the checkout carries its copy (the tests' data).
STOCK_ONED_CONF = os.path.join("tests", "data", "oned_conf_default.conf")


def frontend(lab: Lab) -> LabHost:
    if lab.frontend_host is None:
        raise LabError("this lab was built without frontend_host=True")
    return lab.frontend_host


def cli(lab: Lab, env: Mapping[str, str] | None = None, timeout: float = 120.0) -> Runner:
    """Root inside the frontend (its mounts: /etc/one, /var/lib/one), with this interpreter."""
    return Runner(prefix=frontend(lab).enter, env=dict(env or {}), timeout=timeout,
                  where="frontend")


def onemetal(lab: Lab, *args: str, env: Mapping[str, str] | None = None,
             check: bool = True) -> Result:
    return cli(lab, env).run([sys.executable, "-m", "onemetal.cli.onemetal", *args], check=check)


def install(lab: Lab, source: str) -> Result:
    """`onemetal install` as an operator runs it on the frontend; with OpenNebula's stock
    oned.conf in /etc/one when `source` has its copy, `--apply-oned-conf` too."""
    host = frontend(lab)
    args = ["install", "--prefix", "/var/lib/one", "--etc", "/etc/one", "--source", source,
            "--systemd-dir", SYSTEMD_DIR]
    stock = os.path.join(source, STOCK_ONED_CONF)
    if os.path.exists(stock):
        with open(stock, encoding="utf-8") as f:
            text = f.read()
        with open(host.path("/etc/one/oned.conf"), "w", encoding="utf-8") as f:
            f.write(text)
        args.append("--apply-oned-conf")
    return onemetal(lab, *args)


def sync_remotes(lab: Lab, hosts: Sequence[str] = ()) -> None:
    """`onehost sync --force`, as oneadmin from the frontend (src/mad/ruby/HostSyncManager.rb):
    mkdir -p of the remote dir, then `rsync -LRaz --delete` of the remotes tree to it; hosts
    in parallel, as onehost sync does."""
    oneadmin = frontend(lab).oneadmin

    def one(name: str) -> None:
        oneadmin.run(["ssh", "-o", "BatchMode=yes", name, f"mkdir -p '{REMOTE_DIR}'/"])
        oneadmin.run(["rsync", "-LRaz", "--delete", f"{REMOTES}/./", f"{name}:{REMOTE_DIR}/"])

    names = list(hosts) or [h.name for h in lab.hosts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, names))  # re-raises the first host's error
