"""The host's list of mesh peers: computed from the host pool the frontend pushes, kept on disk.

The frontend (`onemetal mesh sync`) sends each host the pool as HOST_POOL XML, with
TUNNEL_IP filled in for every host; the host keeps the other hosts as its peers
in its state directory, outside the remotes tree that `onehost sync` wipes, so
that `pre` can ensure the tunnels from the last list it received.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Sequence, TextIO

from onemetal import config
from onemetal.errors import InputError
from onemetal.filestate import OwnedFiles
from onemetal.opennebula import payload, values
from onemetal.opennebula.resources import Host, host_pool
from onemetal.reconcile import Plan, reconcile

PEERS_FILE = "peers.json"


@dataclass(frozen=True, order=True)
class Peer:
    name: str
    tunnel_ip: str
    host_id: int


def peers_from_pool(hosts: Sequence[Host], me: str) -> tuple[Peer, ...]:
    """Pure: every host of the pool but `me`, with its tunnel address, sorted by name."""
    if not any(h.name == me for h in hosts):
        raise InputError(f"this host, {me!r}, is not in the pushed host pool", "HOST_POOL")
    peers = []
    for host in hosts:
        field = f"HOST[NAME={host.name}]/TEMPLATE/TUNNEL_IP"
        tunnel_ip = host.template.get("TUNNEL_IP")
        if not tunnel_ip:
            raise InputError("missing (the frontend resolves it before pushing)", field)
        address = values.ip(tunnel_ip, field, 4)
        if host.name != me:
            peers.append(Peer(host.name, address, host.id))
    addresses = [p.tunnel_ip for p in peers]
    if len(set(addresses)) != len(addresses):
        raise InputError("two hosts share one TUNNEL_IP", "HOST_POOL")
    return tuple(sorted(peers))


def render(peers: Sequence[Peer]) -> str:
    return json.dumps([asdict(p) for p in peers], indent=1, sort_keys=True) + "\n"


def state(directory: str) -> OwnedFiles:
    return OwnedFiles(os.path.join(directory, "mesh"), "mesh")


def load(directory: str) -> tuple[Peer, ...]:
    """The last peer list this host received (empty before the first sync)."""
    text = state(directory).read().get(PEERS_FILE)
    return tuple(Peer(**p) for p in json.loads(text)) if text else ()


def store_entry(args: Sequence[str], stdin: TextIO) -> str:
    """Host entry `mesh-peers <this host name>`, stdin: base64 HOST_POOL XML."""
    if len(args) != 1:
        raise InputError("expected exactly one argument, this host's name", "argv")
    me = values.name(args[0], "argv[1] (host name)")
    hosts = host_pool(payload.read_payload(stdin.read(), "stdin", root="HOST_POOL"))
    peers = peers_from_pool(hosts, me)
    cfg = config.load()
    plan: Plan[str, str] = reconcile(
        state(cfg.core.state_dir), {PEERS_FILE: render(peers)},
        lock_dir=os.path.join(cfg.core.state_dir, "locks"), host=me, subsystem="mesh-peers",
        lock_timeout=cfg.core.lock_timeout)
    return f"PEERS={len(peers)} CHANGED={'YES' if plan else 'NO'}"
