"""What every net action on a host shares: configuration, the command runner, OVS, the lock."""

from __future__ import annotations

import os
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, Mapping

from onemetal import config
from onemetal.net import peers
from onemetal.net.bridge import TunnelSpec, tunnel_name
from onemetal.net.mtu import mesh_overlay_mtu, underlay_mtu
from onemetal.net.openflow import FlowTable
from onemetal.net.ovsdb import OvsDb
from onemetal.ownership import private_dir
from onemetal.reconcile import host_lock
from onemetal.record import value
from onemetal.run import Runner, privileged

# One lock for the whole subsystem on a host: the mesh, every VM port and the shared
# flows are rendered from one bridge state, so two actions must not interleave.
SUBSYSTEM = "net"


@value
class NetHost:
    cfg: config.Config

    @classmethod
    def load(cls) -> "NetHost":
        return cls(config.load())

    @property
    def runner(self) -> Runner:
        """Runs commands that need root; as oneadmin through `sudo -n`, which OpenNebula's node
        sudoers allow for OVS and `ip link` (ONE_OVS, ONE_NET) and onemetal's fragment for
        the NAT gateway's `ip address`, `sysctl` and `conntrack` calls."""
        return privileged(self.cfg.core.command_timeout)

    @property
    def reader(self) -> Runner:
        """Runs read-only commands that need no privilege (`ip -j addr show`): no sudo, so no
        sudoers rule has to allow them."""
        return Runner(timeout=self.cfg.core.command_timeout)

    @property
    def ovs(self) -> OvsDb:
        return OvsDb(self.runner)

    @property
    def flows(self) -> FlowTable:
        return FlowTable(self.runner, self.cfg.net.bridge)

    @property
    def state_dir(self) -> str:
        return self.cfg.core.state_dir

    @contextmanager
    def lock(self) -> Iterator[None]:
        private_dir(self.state_dir, "core.state_dir")
        with host_lock(os.path.join(self.state_dir, "locks"), "local", SUBSYSTEM,
                       self.cfg.core.lock_timeout):
            yield

    def mesh(self) -> peers.Mesh:
        return peers.load(self.state_dir)

    def tunnels(self, mesh: peers.Mesh) -> Mapping[str, TunnelSpec] | None:
        """The tunnel ports the mesh wants; None before the first sync (leave them alone)."""
        if mesh.local is None:
            return None
        net = self.cfg.net
        bfd = net.bfd_interval_ms if net.bfd else 0
        return {tunnel_name(p.tunnel_ip): TunnelSpec(p.name, p.tunnel_ip, net.vxlan_port, bfd)
                for p in mesh.peers}

    def max_mtu(self, mesh: peers.Mesh) -> int:
        """The overlay's MTU from what the peer list recorded: no command (docs/net.md)."""
        return mesh_overlay_mtu(mesh, self.reader, self.cfg.net.underlay_mtu)

    def learn_underlay_mtu(self, mesh: peers.Mesh) -> int:
        """What mesh sync records: net.underlay_mtu, else the tunnel interface's MTU, read now."""
        local_ip = mesh.local.tunnel_ip if mesh.local else None
        return underlay_mtu(self.reader, self.cfg.net.underlay_mtu, local_ip)
