"""The engine net, NAT and storage share: desired state, actual state, plan, apply.

A subsystem supplies a `Resource`: `read()` returns the actual state of the
objects it owns (those carrying its ownership tag, nothing else), `apply(plan)`
makes the change in one transaction and tags what it creates. `reconcile()`
takes the host/subsystem lock, re-reads inside it, and applies only a non-empty
plan, so running twice is a no-op and an apply killed midway converges when run
again.

>>> p = diff("demo", want={"a": 1, "b": 2}, have={"b": 3, "c": 4})
>>> print(p)
demo: 3 changes
+ a: 1
~ b: 3 -> 2
- c
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Hashable, Iterator, Mapping, TypeVar

    K = TypeVar("K", bound=Hashable)
    V = TypeVar("V")

from onemetal import lazylog
from onemetal.errors import LockTimeout
from onemetal.opennebula import values
from onemetal.record import value

log = lazylog.getLogger(__name__)

# Every object onemetal creates carries this tag (external_ids:onemetal-owner, nft table name,
# file header), so a sweep removes what is ours and stale and never touches anything else.
OWNER = "onemetal"


@value
class Plan:  # Plan[K, V] in annotations: K the object's key, V its desired state
    subject: str
    add: Mapping[K, V]
    change: Mapping[K, tuple[V, V]]
    remove: Mapping[K, V]

    def __bool__(self) -> bool:
        return bool(self.add or self.change or self.remove)

    def __len__(self) -> int:
        return len(self.add) + len(self.change) + len(self.remove)

    def lines(self) -> list[str]:
        out = [(str(k), f"+ {k}: {v}") for k, v in self.add.items()]
        out += [(str(k), f"~ {k}: {old} -> {new}") for k, (old, new) in self.change.items()]
        out += [(str(k), f"- {k}") for k in self.remove]
        return [line for _, line in sorted(out)]

    def __str__(self) -> str:
        if not self:
            return f"{self.subject}: converged, nothing to do"
        return "\n".join([f"{self.subject}: {len(self)} changes", *self.lines()])


def diff(subject: str, want: Mapping[K, V], have: Mapping[K, V]) -> Plan[K, V]:
    """Pure: what turns `have` into `want`."""
    return Plan(
        subject=subject,
        add=MappingProxyType({k: v for k, v in want.items() if k not in have}),
        change=MappingProxyType({k: (have[k], v) for k, v in want.items()
                                 if k in have and have[k] != v}),
        remove=MappingProxyType({k: v for k, v in have.items() if k not in want}))


class Resource:  # Resource[K, V] in annotations: anything with these members
    subject: str

    def read(self) -> Mapping[K, V]: ...

    def apply(self, plan: Plan[K, V]) -> None: ...


@contextmanager
def host_lock(lock_dir: str, host: str, subsystem: str, timeout: float) -> Iterator[None]:
    """Exclusive fcntl lock per host and subsystem, waited for at most `timeout` seconds.

    oned runs actions for several VMs of one host at once; they serialise here."""
    values.name(host, "host")
    values.name(subsystem, "subsystem")
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    path = os.path.join(lock_dir, f"{host}.{subsystem}.lock")
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"held by another action for more than {timeout:g} s",
                                      field=path) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def reconcile(resource: Resource[K, V], want: Mapping[K, V], *, lock_dir: str, host: str,
              subsystem: str, lock_timeout: float = 60.0, dry_run: bool = False) -> Plan[K, V]:
    """Bring `resource` to `want`; returns the plan that was (or, dry run, would be) applied."""
    with host_lock(lock_dir, host, subsystem, lock_timeout):
        plan = diff(resource.subject, want, resource.read())
        if plan and not dry_run:
            resource.apply(plan)
            log.info("%s: applied %d changes", resource.subject, len(plan))
        else:
            log.debug("%s: %s", resource.subject, "dry run" if dry_run else "converged")
    return plan
