"""Host entry `mesh-peers <this host> [--dry-run]`: take the pushed host pool, converge the tunnels.

The frontend (`onemetal mesh sync`) sends the HOST_POOL with TUNNEL_IP filled in
for every member. The host keeps the list (for `pre`, which re-ensures it) and
brings its tunnel ports to it in one OVSDB transaction: new peers added, gone
ones removed, nothing else touched; with no change, nothing is written.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal.errors import InputError
from onemetal.net import peers
from onemetal.net.bridge import Request, converge
from onemetal.net.host import NetHost
from onemetal.opennebula import payload, values
from onemetal.opennebula.resources import host_pool
from onemetal.reconcile import diff


def entry(args: Sequence[str], stdin: TextIO) -> str:
    dry_run = "--dry-run" in args
    rest = [a for a in args if a != "--dry-run"]
    if len(rest) != 1:
        raise InputError("expected this host's name (and optionally --dry-run)", "argv")
    me = values.name(rest[0], "argv[1] (host name)")
    pool = peers.peers_from_pool(host_pool(payload.read_payload(stdin.read(), "stdin",
                                                                 root="HOST_POOL")), me)
    host = NetHost.load()
    # Learned here, at every sync, so that no action runs a command for it (docs/net.md).
    mesh = peers.Mesh(pool.local, pool.peers, host.learn_underlay_mtu(pool))
    with host.lock():
        files = peers.state(host.state_dir)
        have = files.read()
        stored = diff("peers", {peers.PEERS_FILE: peers.render(mesh)}, have)
        if stored and not dry_run:
            files.apply(stored)
        outcome = converge(host.ovs, host.flows, host.cfg.net, Request(tunnels=host.tunnels(mesh)),
                           dry_run=dry_run)
    changed = bool(outcome.ports) or bool(stored)
    return "\n".join([f"PEERS={len(mesh.peers)} CHANGED={'YES' if changed else 'NO'}",
                      *outcome.ports.lines(),
                      *mtu_lines(peers.parse(have.get(peers.PEERS_FILE)).underlay_mtu, mesh)])


def mtu_lines(before: int | None, mesh: peers.Mesh) -> list[str]:
    """A changed underlay MTU, said once: VM ports take the new one at their next action."""
    if before is None or before == mesh.underlay_mtu:
        return []
    return [f"~ underlay MTU: {before} -> {mesh.underlay_mtu} (VM ports follow at their next "
            f"action)"]
