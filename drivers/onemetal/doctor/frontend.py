"""`onemetal doctor` on the frontend: its own sections, then each host's over SSH.

Frontend: the installed remotes (the manifest's files under the remotes directory),
the host pool (the source `onemetal mesh sync` uses), and the NAT gateway's table
against the store. Hosts: the "host-doctor" entry, sent the frontend's digests and
the pool, so each host compares itself; hosts are asked in parallel, each bounded.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from onemetal import doctor_report
from onemetal.config import Config
from onemetal.doctor.remotes import digests
from onemetal.doctor_report import FAIL, OK, Check
from onemetal.errors import OneMetalError

HOST_TIMEOUT = 120.0
PARALLEL = 8


def installed(remotes: str) -> tuple[list[Check], dict[str, str]]:
    """The manifest's files under `remotes`, each present, and their digests (relative paths)."""
    from onemetal.install import MANIFEST

    manifest = os.path.join(os.path.dirname(os.path.abspath(remotes)), MANIFEST)
    name, fix = "frontend remotes", "as root: onemetal install"
    try:
        with open(manifest, encoding="utf-8") as f:
            files = [p for p in json.load(f)["files"] if isinstance(p, str)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [Check(name, FAIL, f"{manifest}: {exc}", fix)], {}
    root = os.path.abspath(remotes) + os.sep
    rels = [os.path.relpath(p, root) for p in files if p.startswith(root)] + [
        os.path.relpath(manifest, root)]
    found = digests(root, rels)
    missing = sorted(r for r, d in found.items() if d is None)
    if missing:
        return [Check(name, FAIL, f"{len(missing)} of {len(rels)} files missing under {remotes}: "
                                  f"{', '.join(missing[:3])}", fix)], {}
    return [Check(name, OK, f"{len(rels)} files under {remotes}, as the manifest lists")], \
        {r: d for r, d in found.items() if d is not None}


def pool() -> tuple[list[Check], list[str] | None]:
    """The mesh members, as `onemetal mesh sync` reads them (the API's host pool, no OFFLINE)."""
    from onemetal.net import sync
    from onemetal.opennebula import client

    try:
        names = [h.name for h in sync.members(client.host_pool(client.connect()))]
    except (OneMetalError, OSError) as exc:
        return [Check("host pool", FAIL, f"not read: {exc}",
                      "check ONE_XMLRPC and ONE_AUTH (as for onehost list)")], None
    return [Check("host pool", OK, f"{len(names)} hosts: {', '.join(names)}")], names


def nat(cfg: Config) -> list[Check]:
    """The gateway's table against the store, as `onenat plan` compares them."""
    from onemetal.nat import gateway
    from onemetal.nat.store import Store

    if not cfg.nat.gateway:
        return [Check("nat", OK, "no NAT gateway configured (nat.gateway)")]
    try:
        differences = gateway.sync(cfg, Store(cfg.nat.store), dry_run=True)[1:]
    except (OneMetalError, OSError) as exc:
        return [Check("nat table", FAIL, f"{cfg.nat.gateway}: {exc}", "onenat sync")]
    if differences:
        shown = "; ".join(differences[:3]) + (" ..." if len(differences) > 3 else "")
        return [Check("nat table", FAIL, f"{cfg.nat.gateway}: {len(differences)} differences "
                                         f"from the store: {shown}", "onenat sync")]
    return [Check("nat table", OK, f"{cfg.nat.gateway}: in step with the store")]


def on_host(cfg: Config, host: str, files: dict[str, str], members: list[str] | None) -> list[Check]:
    from onemetal.config import ssh_runner

    peers = None if members is None else [m for m in members if m != host]
    request = json.dumps({"files": files, "peers": peers})
    try:
        result = ssh_runner(cfg.ssh, host).run_entry("host-doctor", input=request,
                                                     timeout=HOST_TIMEOUT)
        checks = doctor_report.loads(result.stdout)
    except OneMetalError as exc:
        checks = [Check("host-doctor", FAIL, str(exc),
                        "check SSH as oneadmin from the frontend, then onehost sync --force")]
    return [Check(f"{host}: {c.name}", c.status, c.detail, c.remedy) for c in checks]


def run(cfg: Config, remotes: str, host: str | None = None) -> list[Check]:
    """Every check; `host` limits the host sections (and NAT, unless it is the gateway) to it."""
    checks, files = installed(remotes)
    found, names = pool()
    checks += found
    if host is None or host == cfg.nat.gateway:
        checks += nat(cfg)
    targets: Sequence[str] = [host] if host else (names or [])
    with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(targets)))) as workers:
        for part in workers.map(lambda h: on_host(cfg, h, files, names), targets):
            checks += part
    return checks


