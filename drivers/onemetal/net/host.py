"""What every net action on a host shares: configuration, the command runner, OVS, the lock."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

from onemetal import config
from onemetal.net import peers
from onemetal.net.bridge import TunnelSpec, tunnel_name
from onemetal.net.mtu import overlay_mtu, underlay_mtu
from onemetal.net.openflow import FlowTable
from onemetal.net.ovsdb import OvsDb
from onemetal.reconcile import host_lock
from onemetal.run import Runner

# One lock for the whole subsystem on a host: the mesh, every VM port and the shared
# flows are rendered from one bridge state, so two actions must not interleave.
SUBSYSTEM = "net"


@dataclass(frozen=True)
class NetHost:
    cfg: config.Config

    @classmethod
    def load(cls) -> "NetHost":
        return cls(config.load())

    @property
    def runner(self) -> Runner:
        """Runs OVS commands; as oneadmin through `sudo -n`, which the sudoers rules of
        OpenNebula's node packages allow for ovs-vsctl and ovs-ofctl (no password prompt)."""
        prefix = ("sudo", "-n") if os.geteuid() != 0 else ()
        return Runner(prefix=prefix, timeout=self.cfg.core.command_timeout)

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
        local_ip = mesh.local.tunnel_ip if mesh.local else None
        return overlay_mtu(underlay_mtu(self.runner, self.cfg.net.underlay_mtu, local_ip))
