"""The frontend's side of the gateway: push the store's state to the NAT gateway host over SSH.

The gateway runs `nat-apply` from its copy of the remotes (like every host entry),
so the whole change happens there under one lock; see nat/apply.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from onemetal.config import Config, ssh_runner
from onemetal.errors import ConfigError
from onemetal.nat.store import Store
from onemetal.run import SshRunner


def payload(cfg: Config, store: Store) -> str:
    state = store.state()
    data: dict[str, Any] = {name: [dataclasses.asdict(x) for x in getattr(state, name)]
                            for name in ("vnets", "addresses", "mappings", "forwards")}
    data["interface"] = cfg.nat.interface
    # Read in the same snapshot as the rest: the gateway refuses a push older than its last.
    data["generation"] = state.generation
    return json.dumps(data, sort_keys=True)


def ssh(cfg: Config) -> SshRunner:
    if not cfg.nat.gateway or not cfg.nat.interface:
        raise ConfigError("set the gateway host and its interface in onemetal.conf", "nat.gateway")
    return ssh_runner(cfg.ssh, cfg.nat.gateway)


def sync(cfg: Config, store: Store, dry_run: bool = False) -> list[str]:
    """Apply (or, dry run, show) the store on the gateway; returns its report lines."""
    args = ["--dry-run"] if dry_run else []
    out = ssh(cfg).run_entry("nat-apply", args, input=payload(cfg, store), timeout=120)
    return out.stdout.strip().splitlines()
