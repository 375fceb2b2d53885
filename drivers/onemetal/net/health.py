"""Host entry `mesh-health`: the mesh as a monitoring probe reports it into the host's template.

Runs as a host/system probe (its output is merged into the host template, so
`onehost show` has it). Per peer: whether BFD sees the tunnel up, which tests the
real VXLAN path (UDP 4789 through the provider's filters), not just ICMP. A probe
that fails can put the host in ERROR, so every problem is reported as a value.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal.errors import OneMetalError
from onemetal.net.bridge import tunnel_name, tunnel_spec
from onemetal.net.host import NetHost
from onemetal.opennebula.values import template_value as _quote


def report(host: NetHost) -> list[str]:
    mesh = host.mesh()
    state = host.ovs.read(host.cfg.net.bridge, status=True)  # BFD's verdict per tunnel
    tunnels = {n: i for n, i in state.interfaces.items() if tunnel_spec(i)}
    mtu = host.max_mtu(mesh)
    lines = [f"ONEMETAL_MESH_BRIDGE={_quote(host.cfg.net.bridge)}",
             f"ONEMETAL_MESH_MTU={_quote(mtu)}"]
    up = 0
    for peer in mesh.peers:
        iface = tunnels.get(tunnel_name(peer.tunnel_ip))
        if iface is None:
            status, diag = "missing", "no tunnel port (run onemetal mesh sync)"
        elif not host.cfg.net.bfd:
            status, diag = "unknown", "BFD disabled (net.bfd)"
        else:
            status = iface.bfd_status.get("state", "unknown")
            diag = iface.bfd_status.get("diagnostic", "")
        up += status == "up"
        lines.append(f"ONEMETAL_MESH_PEER=[NAME={_quote(peer.name)},TUNNEL_IP={_quote(peer.tunnel_ip)},"
                     f"STATE={_quote(status)},DIAGNOSTIC={_quote(diag)},MTU={_quote(mtu)}]")
    total = len(mesh.peers)
    overall = "ok" if up == total else ("down" if up == 0 else "degraded")
    lines += [f"ONEMETAL_MESH_PEERS={_quote(total)}", f"ONEMETAL_MESH_PEERS_UP={_quote(up)}",
              f"ONEMETAL_MESH_STATUS={_quote('no-peers' if not total else overall)}"]
    return lines


def entry(args: Sequence[str], stdin: TextIO) -> str:
    try:
        return "\n".join(report(NetHost.load()))
    except OneMetalError as exc:
        return f"ONEMETAL_MESH_STATUS=\"error\"\nONEMETAL_MESH_ERROR={_quote(exc)}"
