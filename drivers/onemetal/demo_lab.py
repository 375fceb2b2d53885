"""The demo's infrastructure: the reference deployment's machines, built as an operator would.

A frontend (the API stand-in where oned would be, onemetal installed with its
own CLI, the NAT store), hosts one-0..one-2 (one-0 also the NAT gateway, with
an "internet" client behind its ENI), and an NFS server exporting the
datastores, mounted by `onemetal mount ensure` on the frontend and every host.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from onemetal import install
from onemetal.lab import Lab, frontend, frontend_host, nfs
from onemetal.lab.host import ONEADMIN_ID
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.samples import host_pool_xml
from onemetal.lab.vm import LabVM
from onemetal.run import Result

DATASTORES = "/var/lib/one/datastores"
SYSTEM_DS, IMAGE_DS = 0, 1
GATEWAY_HOST, ENI = "one-0", "ens5"
# The gateway's ENI (its primary private address is the SNAT address) and the internet client.
SNAT_ADDRESS, CLIENT_ADDRESS = "10.0.0.41", "10.0.0.100"
# Elastic IP = private secondary address of the gateway's ENI, as AWS associates them.
EIPS = (("3.3.3.2", "10.0.0.42"), ("3.3.3.3", "10.0.0.43"))
SUBNET, VNET_GATEWAY, VNI, VNET_ID = "192.168.0.0/24", "192.168.0.1", 100, 0
DNS = "10.0.0.2"  # the VPC resolver
NFS_SERVER = "nfs"


@dataclass
class DemoLab:
    lab: Lab
    api: frontend.Frontend
    client: LabVM
    share: nfs.NfsServer
    said: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The frontend CLIs' environment: how they reach the API (onemetal.conf is /etc/one's)."""
        return {k: v for k, v in self.api.env.items() if k != "ONEMETAL_CONF"}

    def onemetal(self, *args: str, check: bool = True) -> Result:
        return frontend_host.onemetal(self.lab, *args, env=self.env, check=check)

    def onenat(self, *args: str, check: bool = True) -> Result:
        return frontend_host.cli(self.lab, self.env).run(
            [sys.executable, "-m", "onemetal.cli.onenat", *args], check=check)

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.lab.hosts]

    def on_share(self, path: str) -> str:
        """Where a datastore path lies on the NFS server's own disk."""
        return os.path.join(self.share.export_dir, os.path.relpath(path, DATASTORES))


def _frontend_conf(share: str, underlay_mtu: int) -> str:
    """What an operator sets in the frontend's /etc/one/onemetal.conf for this deployment (the
    underlay MTU is the provider's: vnet_create derives the vnets' MTU from it)."""
    return ('[ssh]\nkey = "/var/lib/one/.ssh/id_ed25519"\n'
            'known_hosts = "/var/lib/one/.ssh/known_hosts"\n'
            f'[net]\nunderlay_mtu = {underlay_mtu}\n'
            f'[nat]\ngateway = "{GATEWAY_HOST}"\ninterface = "{ENI}"\n'
            f'eip_groups = ["{frontend.TENANT_GROUP}"]\n'
            f'[storage]\nprofile = "lab"\nsource = "{share}"\nprobe_timeout = 5.0\n'
            'mount_timeout = 15.0\n')


def _host_conf(share: str) -> str:
    return (HOST_CONF + f'[storage]\nprofile = "lab"\nsource = "{share}"\nprobe_timeout = 5.0\n'
            'mount_timeout = 15.0\n')


def _write_root_conf(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chown(path, 0, ONEADMIN_ID)
    os.chmod(path, 0o640)


def install_frontend(lab: Lab) -> str:
    """`onemetal install` on the frontend, then the remotes synced to the hosts."""
    out = frontend_host.install(lab, install.source_root()).stdout
    frontend_host.sync_remotes(lab)
    return out


def start_share(lab: Lab) -> nfs.NfsServer:
    """ganesha on the NFS server, one directory per datastore, owned by oneadmin."""
    server = nfs.start_server(lab.host(NFS_SERVER), lab.record,  # type: ignore[arg-type]
                              owner=ONEADMIN_ID)
    for ds in (SYSTEM_DS, IMAGE_DS):
        path = os.path.join(server.export_dir, str(ds))
        os.makedirs(path, exist_ok=True)
        os.chown(path, ONEADMIN_ID, ONEADMIN_ID)
    return server


def configure(lab: Lab, share: nfs.NfsServer) -> None:
    """onemetal.conf on the frontend and every host, and the lab's NFS client where it mounts."""
    fe = frontend_host.frontend(lab)
    _write_root_conf(fe.path(frontend_host.CONF), _frontend_conf(share.source, lab.underlay_mtu))
    for host in [fe, *lab.hosts]:
        if host is not fe:
            host.write_conf(_host_conf(share.source))
        nfs.install_client(host)
        host.run(["install", "-d", "-o", str(ONEADMIN_ID), "-g", str(ONEADMIN_ID), DATASTORES])


def start_api(lab: Lab) -> frontend.Frontend:
    """The API stand-in with the host pool as oned has it once the hosts were added."""
    api = frontend.start(lab, os.path.join(lab.workdir, "api"), nat_gateway=GATEWAY_HOST,
                         nat_interface=ENI)
    with open(os.path.join(api.data, "host_pool.xml"), "w", encoding="utf-8") as f:
        f.write(host_pool_xml([(i, h.name, h.address) for i, h in enumerate(lab.hosts)]))
    return api


def add_internet(lab: Lab) -> LabVM:
    """one-0's ENI and the internet behind it (a client that reaches only that link)."""
    return lab.add_uplink(GATEWAY_HOST, ENI, f"{SNAT_ADDRESS}/24", f"{CLIENT_ADDRESS}/24")
