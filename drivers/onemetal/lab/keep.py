"""A lab left up after its process ends (`onemetal demo --keep`): how to enter it, and
how to take it down later (`onemetal demo --down [TOKEN]`).

A kept lab's record stays in the registry with `kept` set, so no later lab sweeps it.
Its hosts are entered with nsenter through their anchor process, not `ip netns exec`:
that would give a fresh mount namespace, without the host's /run, /var/lib/one and the
datastores mount.
"""

from __future__ import annotations

import shlex
from typing import Sequence

from onemetal.lab.host import LabError
from onemetal.lab.lab import Lab
from onemetal.lab.teardown import teardown_record
from onemetal.lab.registry import kept_records
from onemetal.lab.vm import LabVM
from onemetal.run import Runner

DOWN_COMMAND = "onemetal demo --down"


def _shell(runner: Runner) -> str:
    """The interactive shell where `runner` runs its commands: the same prefix, then bash."""
    return shlex.join([*runner.prefix, "bash"])


def entry_hints(lab: Lab, others: Sequence[LabVM] = ()) -> list[str]:
    """One line per place to enter (frontend, hosts, servers, VM namespaces, `others` such
    as the internet client), then the command that tears the lab down."""
    places: list[tuple[str, str]] = []
    if lab.frontend_host is not None:
        places.append(("frontend", _shell(lab.frontend_host.runner)))
    else:
        places.append(("frontend", _shell(lab.frontend)))
    places += [(h.name, _shell(h.runner)) for h in [*lab.hosts, *lab.servers]]
    places += [(f"{vm.name} (on {vm.host})", _shell(vm.runner)) for vm in [*lab.vms, *others]]
    places.append(("teardown", f"{DOWN_COMMAND} {lab.token}"))
    width = max(len(name) for name, _ in places)
    return [f"{name:<{width}}  {command}" for name, command in places]


def teardown_kept(token: str | None = None) -> list[str]:
    """Tear down the kept lab `token`, or every kept lab; returns the tokens removed.

    Raises LabError for a token that no kept lab has, and when something could not be
    removed (its record then stays, so a second run can finish the job)."""
    kept = kept_records()
    chosen = [r for r in kept if token is None or r.token == token]
    if token is not None and not chosen:
        known = ", ".join(r.token for r in kept) or "none"
        raise LabError(f"no kept lab {token!r} (kept labs: {known})")
    removed, failed = [], []
    for record in chosen:
        leftovers = teardown_record(record)
        if leftovers:
            failed.append(f"{record.token}: {', '.join(leftovers)}")
        else:
            removed.append(record.token)
    if failed:
        done = f" (removed {', '.join(removed)})" if removed else ""
        raise LabError(f"could not remove {'; '.join(failed)}{done}")
    return removed
