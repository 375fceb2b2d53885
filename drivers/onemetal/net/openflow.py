"""The OpenFlow flows onemetal owns on a bridge, diffed by cookie and applied in one bundle.

Every flow we install carries a cookie: 16 bits marking it ours, 16 bits naming
its group (0 for the bridge's shared flows, else the OpenFlow port number the
flow belongs to) and 32 bits of a hash of its text. A changed flow therefore has
a new cookie, and the actual state is just the set of cookies on the bridge: no
parsing of `dump-flows` output back into flows, which OVS prints in its own
normal form. MAC entries that learn() installs carry another marker and are
never part of the diff.

>>> f = Flow(table=0, priority=0, match="", actions="drop")
>>> f.text() == f"cookie={f.cookie:#x},table=0,priority=0,actions=drop"
True
"""

from __future__ import annotations

import re
from types import MappingProxyType

try:  # CPython's own SHA-256: hashlib would load OpenSSL, about 2 ms of every action's start-up
    from _sha256 import sha256  # Python 3.11 (Debian 12)
except ImportError:  # pragma: no cover - later Pythons renamed it
    from hashlib import sha256

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Mapping

from onemetal.reconcile import Plan
from onemetal.record import value
from onemetal.run import Runner

OWNED = 0x6F6D << 48      # "om": flows rendered from desired state
LEARNED = 0x6F6C << 48    # "ol": MAC entries installed by learn()
MARKER_MASK = 0xFFFF << 48
GROUP_MASK = MARKER_MASK | 0xFFFF << 32
SHARED = 0                # group of the flows every port and tunnel relies on
LEARN_TABLE = 30          # where learn() puts MAC entries (see pipeline.py)
_COOKIE = re.compile(r"^\s*cookie=(0x[0-9a-f]+)", re.M)  # the flow's own, not one inside learn()


@value(order=True)
class Flow:
    table: int
    priority: int
    match: str
    actions: str
    group: int = SHARED

    @property
    def cookie(self) -> int:
        digest = sha256(
            f"{self.table}|{self.priority}|{self.match}|{self.actions}".encode()).digest()
        return OWNED | (self.group << 32) | int.from_bytes(digest[:4], "big")

    def text(self) -> str:
        match = f",{self.match}" if self.match else ""
        return (f"cookie={self.cookie:#x},table={self.table},priority={self.priority}"
                f"{match},actions={self.actions}")

    def __str__(self) -> str:
        return f"table={self.table},priority={self.priority},{self.match} -> {self.actions}"


def group_of(cookie: int) -> int:
    return (cookie >> 32) & 0xFFFF


def by_cookie(flows: Iterable[Flow]) -> dict[int, Flow]:
    return {f.cookie: f for f in flows}


class FlowTable:
    """The flows of one bridge, through ovs-ofctl."""

    def __init__(self, runner: Runner, bridge: str) -> None:
        self.runner = runner
        self.bridge = bridge

    def cookies(self) -> frozenset[int]:
        """Cookies of the flows we own (learned MAC entries excluded)."""
        out = self.runner.run(["ovs-ofctl", "dump-flows", self.bridge,
                               f"cookie={OWNED:#x}/{MARKER_MASK:#x}"]).stdout
        return frozenset(int(c, 16) for c in _COOKIE.findall(out))

    def apply(self, plan: Plan[int, Flow], forget_macs: Iterable[str] = (),
              drop_groups: Iterable[int] = ()) -> None:
        """One bundle: packets see the old flows or the new ones, never a mix. Every flow of
        `drop_groups` goes first, whatever its cookie: no dump-flows needed to know them."""
        lines = [f"delete cookie={OWNED | g << 32:#x}/{GROUP_MASK:#x}"
                 for g in sorted(set(drop_groups))]
        lines += [f"delete cookie={c:#x}/-1" for c in sorted(plan.remove)]
        lines += [f"delete table={LEARN_TABLE},cookie={LEARNED:#x}/{MARKER_MASK:#x},dl_dst={mac}"
                  for mac in sorted(set(forget_macs))]
        lines += [f"add {f.text()}" for f in sorted(plan.add.values())]
        if lines:
            self.runner.run(["ovs-ofctl", "--bundle", "add-flows", self.bridge, "-"],
                            input="\n".join(lines) + "\n")


    def flush_zones(self, zones: Iterable[int]) -> None:
        """Forget the connections conntrack holds in each zone (a VM port's: zone = ofport).
        ovs-appctl (allowed by OpenNebula's ONE_OVS) asks ovs-vswitchd, whose datapath it is
        for both the kernel and the userspace datapath; a failure fails the action."""
        for zone in sorted(set(zones)):
            self.runner.run(["ovs-appctl", "dpctl/flush-conntrack", f"zone={zone}"])


def plan_flows(bridge: str, want: Mapping[int, Flow], have: frozenset[int],
               groups: frozenset[int] | None) -> Plan[int, Flow]:
    """Pure: the flow changes, limited to `groups` (None: every group we own).

    Flows of groups outside `groups` belong to other VMs' ports: left alone. A changed
    flow has a new cookie, so there are only additions and removals."""
    in_scope = (lambda c: True) if groups is None else (lambda c: group_of(c) in groups)
    return Plan(subject=f"flows@{bridge}",
                add=MappingProxyType({c: f for c, f in want.items() if c not in have}),
                change=MappingProxyType({}),
                remove=MappingProxyType({c: c for c in have if in_scope(c) and c not in want}))

