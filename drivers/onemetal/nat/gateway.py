"""The frontend's side of the gateway: push the store's state to the NAT gateway host over SSH.

The gateway runs `nat-apply` from its copy of the remotes (like every host entry),
so the whole change happens there under one lock; see nat/apply.py.
"""

from __future__ import annotations

import json
import os
from typing import Any

from onemetal.config import Config, ssh_runner
from onemetal.errors import ConfigError, OneMetalError
from onemetal.nat import fence
from onemetal.nat.store import Store
from onemetal.record import asdict
from onemetal.run import SshRunner


def payload(cfg: Config, store: Store) -> str:
    return _document(cfg, store)[0]


def _document(cfg: Config, store: Store) -> tuple[str, int]:
    """The JSON nat-apply reads, and the store generation it was read at."""
    state = store.state()
    data: dict[str, Any] = {name: [asdict(x) for x in getattr(state, name)]
                            for name in ("vnets", "addresses", "mappings", "forwards")}
    data["interface"] = cfg.nat.interface
    # Checked here too, so a bad value names its onemetal.conf key on the frontend.
    fence.blocked_networks(cfg.nat.blocked_networks, "nat.blocked_networks")
    fence.allowed(cfg.nat.allowed, "nat.allowed")
    data["blocked_networks"], data["allowed"] = list(cfg.nat.blocked_networks), list(cfg.nat.allowed)
    # Read in the same snapshot as the rest: the gateway refuses a push older than its last.
    data["generation"] = state.generation
    return json.dumps(data, sort_keys=True), state.generation


def ssh(cfg: Config) -> SshRunner:
    if not cfg.nat.gateway or not cfg.nat.interface:
        raise ConfigError("set the gateway host and its interface in onemetal.conf", "nat.gateway")
    return ssh_runner(cfg.ssh, cfg.nat.gateway)


# A push can lose the race to a concurrent change's newer one, which the gateway then refuses
# to undo; the store has moved on by then, so the newest state is pushed again, a few times.
ATTEMPTS = 3


def sync(cfg: Config, store: Store, dry_run: bool = False) -> list[str]:
    """Apply (or, dry run, show) the store on the gateway; returns its report lines."""
    args = ["--dry-run"] if dry_run else []
    for attempt in range(1, ATTEMPTS + 1):
        document, generation = _document(cfg, store)
        try:
            out = ssh(cfg).run_entry("nat-apply", args, input=document, timeout=120)
        except OneMetalError:
            if store.generation == generation or attempt == ATTEMPTS:
                raise  # nothing newer to push: the failure is the gateway's own
            continue
        if not dry_run:
            _record_pushed(cfg, generation)
        return out.stdout.strip().splitlines()
    raise AssertionError("unreachable")


def _pushed_file(cfg: Config) -> str:
    return f"{cfg.nat.store}.pushed"


def pushed(cfg: Config) -> int | None:
    """The store generation the gateway last applied from this frontend (None: unknown)."""
    try:
        with open(_pushed_file(cfg), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _record_pushed(cfg: Config, generation: int) -> None:
    path = _pushed_file(cfg)
    with open(f"{path}.tmp", "w", encoding="ascii") as f:
        f.write(f"{generation}\n")
    os.replace(f"{path}.tmp", path)
