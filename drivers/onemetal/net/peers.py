"""The host's list of mesh peers: computed from the host pool the frontend pushes, kept on disk.

The frontend (`onemetal mesh sync`) sends each host the pool as HOST_POOL XML, with
TUNNEL_IP filled in for every host; the host keeps the other hosts as its peers
in its state directory, outside the remotes tree that `onehost sync` wipes, so
that `pre` can ensure the tunnels from the last list it received.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # Host: only mesh sync builds a list from the pool; a reader needs no VM model
    from typing import Sequence

    from onemetal.opennebula.resources import Host

from onemetal.errors import InputError
from onemetal.filestate import OwnedFiles
from onemetal.opennebula import values
from onemetal.record import asdict, value

PEERS_FILE = "peers.json"


@value(order=True)
class Peer:
    name: str
    tunnel_ip: str
    host_id: int


@value
class Mesh:
    local: Peer | None
    peers: tuple[Peer, ...]
    underlay_mtu: int | None = None  # recorded by mesh sync; None in a list from before it was


def peers_from_pool(hosts: Sequence[Host], me: str) -> Mesh:
    """Pure: this host and every other host of the pool (its peers, sorted by name)."""
    if not any(h.name == me for h in hosts):
        raise InputError(f"this host, {me!r}, is not in the pushed host pool", "HOST_POOL")
    local = None
    peers = []
    for host in hosts:
        field = f"HOST[NAME={host.name}]/TEMPLATE/TUNNEL_IP"
        tunnel_ip = host.template.get("TUNNEL_IP")
        if not tunnel_ip:
            raise InputError("missing (the frontend resolves it before pushing)", field)
        address = values.ip(tunnel_ip, field, 4)
        if host.name == me:
            local = Peer(host.name, address, host.id)
        else:
            peers.append(Peer(host.name, address, host.id))
    addresses = [p.tunnel_ip for p in peers] + ([local.tunnel_ip] if local else [])
    if len(set(addresses)) != len(addresses):
        raise InputError("two hosts share one TUNNEL_IP", "HOST_POOL")
    return Mesh(local, tuple(sorted(peers)))


def render(mesh: Mesh) -> str:
    # A top-level key: an older core reading this file ignores it (Peer(**local) would not).
    mtu = {"underlay_mtu": mesh.underlay_mtu} if mesh.underlay_mtu else {}
    return json.dumps({"local": asdict(mesh.local) if mesh.local else None,
                       "peers": [asdict(p) for p in mesh.peers], **mtu},
                      indent=1, sort_keys=True) + "\n"


def state(directory: str) -> OwnedFiles:
    return OwnedFiles(os.path.join(directory, "mesh"), "mesh")


def parse(text: str | None) -> Mesh:
    """A stored peer list; one written before the MTU was recorded has underlay_mtu None."""
    if not text:
        return Mesh(None, ())
    data = json.loads(text)
    mtu = data.get("underlay_mtu")
    return Mesh(Peer(**data["local"]) if data.get("local") else None,
                tuple(Peer(**p) for p in data["peers"]),
                mtu if isinstance(mtu, int) and not isinstance(mtu, bool) and mtu > 0 else None)


def load(directory: str) -> Mesh:
    """The last peer list this host received (empty before the first sync)."""
    return parse(state(directory).read().get(PEERS_FILE))
