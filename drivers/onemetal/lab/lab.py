"""The lab: N hosts and a frontend on an underlay, built and torn down as one object."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
import socket
import signal
import sys
import tempfile
import threading
import time
from types import FrameType, TracebackType
from typing import Sequence

from onemetal.lab import netns
from onemetal.lab.host import ONEADMIN, LabError, LabHost
from onemetal.lab.registry import Record
from onemetal.lab.teardown import sweep_stale, teardown_record
from onemetal.lab.vm import LabVM
from onemetal.run import Runner, SshRunner, SshTarget

__all__ = ["Lab", "LabError"]

# No openvswitch kernel module here: the mesh bridge uses the userspace datapath.
HOST_CONF = """\
[net]
datapath = "netdev"
bfd_interval_ms = 300
"""


class Lab:
    """`with Lab(hosts=3) as lab:` builds hosts one-0..one-2 and a frontend."""

    def __init__(self, hosts: int = 3, *, underlay_mtu: int = 1500,
                 subnet: str = "172.31.255.0/24", frontend_host: bool = False,
                 servers: Sequence[str] = ()) -> None:
        """`frontend_host`: the frontend namespace is also a host (oneadmin, sudo, its own
        mounts, oneadmin's key to every host), where the DS and TM actions run as oned runs
        them; `servers`: more hosts without OVS, by name (an NFS server), at .100 up."""
        if not 1 <= hosts <= 50:
            raise LabError(f"hosts: {hosts} is out of range (1..50)")
        if not 1280 <= underlay_mtu <= 9216:
            raise LabError(f"underlay_mtu: {underlay_mtu} is out of range (1280..9216)")
        bad = [n for n in servers if not n.isalnum() or n in ("frontend", "one")]
        if bad or len(set(servers)) != len(servers) or len(servers) > 20:
            raise LabError(f"servers: {list(servers)} must be distinct alphanumeric names (at most 20)")
        self.host_count = hosts
        self.with_frontend_host = frontend_host
        self.server_names = tuple(servers)
        self.frontend_host: LabHost | None = None
        self.servers: list[LabHost] = []
        self.underlay_mtu = underlay_mtu
        self.network = ipaddress.ip_network(subnet)
        self.token = secrets.token_hex(3)
        self.hosts: list[LabHost] = []
        self.vms: list[LabVM] = []
        self.timings: dict[str, float] = {}
        self.record: Record | None = None
        self._previous_sigterm: object = None

    # -- names and addresses ------------------------------------------------------------
    def _ns(self, suffix: str) -> str:
        return f"oml{self.token}-{suffix}"

    @property
    def workdir(self) -> str:
        assert self.record is not None, "lab not started"
        return self.record.workdir

    @property
    def frontend_address(self) -> str:
        return str(self.network.network_address + 2)

    def _host_address(self, index: int) -> str:
        return str(self.network.network_address + 10 + index)

    def _server_address(self, index: int) -> str:
        return str(self.network.network_address + 100 + index)

    @property
    def key(self) -> str:
        return os.path.join(self.workdir, "id_ed25519")

    @property
    def known_hosts(self) -> str:
        return os.path.join(self.workdir, "known_hosts")

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through __exit__, which tears down

    def start(self) -> None:
        begin = time.monotonic()
        sweep_stale()
        workdir = tempfile.mkdtemp(prefix=f"onemetal-lab-{self.token}-")
        self.record = Record(token=self.token, owner_pid=os.getpid(), workdir=workdir)
        self.record.save()
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._build()
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - begin

    def _add_ns(self, suffix: str) -> str:
        assert self.record is not None
        name = self._ns(suffix)
        self.record.add_namespace(name)
        netns.add(name)
        return name

    def _build(self) -> None:
        assert self.record is not None
        Runner().run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "onemetal-lab",
                      "-f", self.key])
        underlay = self._add_ns("ul")
        root = netns.ROOT
        root.run(["ip", "-n", underlay, "link", "add", "br0", "mtu", str(self.underlay_mtu),
                  "type", "bridge"])
        root.run(["ip", "-n", underlay, "link", "set", "br0", "up"])
        names = {f"one-{i}": self._host_address(i) for i in range(self.host_count)}
        frontend = self._add_ns("fe")
        self._plug(underlay, frontend, "fe")
        root.run(["ip", "-n", frontend, "addr", "add",
                  f"{self.frontend_address}/{self.network.prefixlen}", "dev", "eth0"])
        # `ip netns exec` binds a namespace's hosts file when a host's anchor starts, so
        # every file is written first: each host resolves every name from its start. The
        # machine's own name too, which the hosts share (UTS) and sudo looks up.
        servers = {n: self._server_address(i) for i, n in enumerate(self.server_names)}
        resolv = {**names, **servers, "frontend": self.frontend_address,
                  socket.gethostname(): "127.0.1.1"}
        host_ns = [self._ns(f"h{i}") for i in range(self.host_count)]
        server_ns = [self._ns(f"s{i}") for i in range(len(servers))]
        for ns in [frontend, *host_ns, *server_ns]:
            self.record.netns_etc.append(netns.write_hosts_file(ns, resolv))
        for index, (name, address) in enumerate(names.items()):
            ns = self._add_ns(f"h{index}")
            self._plug(underlay, ns, f"h{index}")
            host = self._new_host(name, ns, address)
            host.start_ovs(self.record, self.underlay_mtu)
            host.check_nftables()
            host.start_sshd(self.record, self.key + ".pub")
            host.write_conf(HOST_CONF)
            self._install_sudoers(host)
            self.hosts.append(host)
        for index, (name, address) in enumerate(servers.items()):
            ns = self._add_ns(f"s{index}")
            self._plug(underlay, ns, f"s{index}")
            server = self._new_host(name, ns, address)
            server.run(["ip", "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0"])
            self.servers.append(server)
        if self.with_frontend_host:
            self.frontend_host = self._new_host("frontend", frontend, self.frontend_address)
            self._install_sudoers(self.frontend_host)
        self.record.save()
        with open(self.known_hosts, "w", encoding="ascii") as f:
            for host in self.hosts:
                f.write(f"{host.name},{host.address} {host.public_host_key()}\n")
        if self.frontend_host is not None:
            self.frontend_host.give_oneadmin_key(self.key, self.known_hosts)

    def _new_host(self, name: str, ns: str, address: str) -> LabHost:
        assert self.record is not None
        host = LabHost(name=name, netns=ns, address=address, prefixlen=self.network.prefixlen,
                       workdir=os.path.join(self.workdir, f"host-{name}"))
        os.makedirs(host.workdir)
        host.start_namespace(self.record)
        return host

    def _install_sudoers(self, host: LabHost) -> None:
        """onemetal's fragment into the host's sudoers.d, as an operator installs it."""
        from onemetal import install

        install.install_sudoers(os.path.join(install.source_root(), "etc", "sudoers.d"),
                                host.sudoers_dir, out=[])

    def _plug(self, underlay: str, ns: str, port: str) -> None:
        netns.veth(underlay, port, ns, "eth0", self.underlay_mtu)
        netns.ROOT.run(["ip", "-n", underlay, "link", "set", port, "master", "br0"])

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)  # type: ignore[arg-type]
            self._previous_sigterm = None

    def stop(self) -> list[str]:
        """Tear the lab down; returns what could not be removed (also said on stderr)."""
        if self.record is None:
            return []
        if self.record.kept:
            self._restore_sigterm()
            return []
        begin = time.monotonic()
        leftovers = teardown_record(self.record)
        self.record = None
        self.hosts, self.vms, self.servers, self.frontend_host = [], [], [], None
        self._restore_sigterm()
        self.timings["teardown"] = time.monotonic() - begin
        if leftovers:
            print(f"onemetal lab {self.token}: could not remove {', '.join(leftovers)}",
                  file=sys.stderr)
        return leftovers

    def keep(self) -> None:
        """Leave the lab up when this process is done (`onemetal demo --keep`): stop() then
        removes nothing, no later lab sweeps it, and only lab.keep.teardown_kept ends it."""
        assert self.record is not None, "lab not started"
        self.record.kept = True
        self.record.save()

    # -- using the lab ------------------------------------------------------------------
    def host(self, name: str) -> LabHost:
        """A host by name: one-N, a server, or "frontend" when the frontend is a host."""
        if name == "frontend" and self.frontend_host is not None:
            return self.frontend_host
        for host in [*self.hosts, *self.servers]:
            if host.name == name:
                return host
        raise LabError(f"no host {name!r} in this lab ({', '.join(h.name for h in self.hosts)})")

    @property
    def underlay(self) -> Runner:
        """Commands in the underlay namespace: the provider's network between the hosts."""
        return netns.in_netns(self._ns("ul"))

    @property
    def frontend(self) -> Runner:
        """Commands in the frontend namespace (where oned, onenat and onemetal run)."""
        return netns.in_netns(self._ns("fe"))

    def ssh_target(self, host: str, **options: object) -> SshTarget:
        settings: dict[str, object] = {"user": ONEADMIN, "host_key_policy": "yes", **options}
        return SshTarget(host=host, key=self.key, known_hosts=self.known_hosts,
                         **settings)  # type: ignore[arg-type]

    def ssh(self, host: str, **options: object) -> SshRunner:
        """Run commands on `host` over SSH from the frontend as oneadmin, as oned does."""
        return SshRunner(self.ssh_target(host, **options), local=self.frontend)

    def sync_remotes(self, remotes_dir: str, remote_dir: str = "/var/tmp/one") -> None:
        """What `onehost sync --force` does: rsync -L --delete the remotes tree to every host."""
        for host in self.hosts:
            ssh = self.ssh(host.name)
            ssh.run(["mkdir", "-p", remote_dir])
            transport = shlex.join(ssh.ssh_options())
            self.frontend.run(["rsync", "-La", "--delete", "-e", transport,
                               remotes_dir.rstrip("/") + "/", f"{host.name}:{remote_dir}/"])

    def frontend_conf(self) -> str:
        """An onemetal.conf for the frontend's CLIs: how to reach the lab's hosts over SSH."""
        path = os.path.join(self.workdir, "frontend-onemetal.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f'[ssh]\nuser = "{ONEADMIN}"\nkey = "{self.key}"\n'
                    f'known_hosts = "{self.known_hosts}"\n')
        return path

    def frontend_cli(self, env: dict[str, str] | None = None) -> Runner:
        """The frontend namespace with ONEMETAL_CONF pointing at `frontend_conf()`."""
        return Runner(prefix=("ip", "netns", "exec", self._ns("fe")), timeout=120.0,
                      env={"ONEMETAL_CONF": self.frontend_conf(), **(env or {})},
                      where="frontend")

    def add_uplink(self, host: str, ifname: str, host_address: str,
                   client_address: str) -> LabVM:
        """The host's provider-side interface (an EC2 ENI) and, behind it, an "internet" client:
        a namespace that reaches the host's addresses on that link, and nothing else."""
        ns = self._add_ns("inet")
        netns.veth(ns, "eth0", self.host(host).netns, ifname, self.underlay_mtu)
        self.host(host).run(["ip", "addr", "add", host_address, "dev", ifname])
        netns.in_netns(ns).run(["ip", "addr", "add", client_address, "dev", "eth0"])
        return LabVM(name="internet", netns=ns, host=host, port=ifname, address=client_address)

    def add_vm(self, host: str, name: str, bridge: str, address: str, *,
               mtu: int = 1500, mac: str | None = None, vlan: int | None = None,
               port: str | None = None) -> LabVM:
        """A "VM": a namespace whose eth0 is plugged into `bridge` on `host`.

        `port` names the host side, as libvirt names a tap after the NIC's TARGET."""
        assert self.record is not None
        lab_host = self.host(host)
        ns = self._add_ns(f"v{len(self.vms)}")
        vm = LabVM.plug(lab_host, ns, name, port or f"vm{self.token}{len(self.vms)}", bridge,
                        address, mtu=mtu, mac=mac, vlan=vlan)
        self.vms.append(vm)
        return vm

    def move_vm(self, vm: LabVM, host: str, bridge: str) -> LabVM:
        """A live migration as the VM's network sees it: its tap leaves `vm.host`'s bridge (as
        libvirt removes it on the source) and a new one joins `host`'s, same MAC, address and
        namespace, so the VM's processes go on; the caller sets MTU and route again."""
        mac = vm.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()
        self.unplug_vm(vm)
        moved = LabVM.plug(self.host(host), vm.netns, vm.name, vm.port, bridge, vm.address,
                           mtu=self.underlay_mtu, mac=mac, vlan=None)
        self.vms = [moved if v.netns == vm.netns else v for v in self.vms]
        return moved

    def follow_port_mtu(self, vm: LabVM) -> int:
        """What libvirt's <mtu> gives a guest (virtio-net's MTU feature): its NIC's MTU follows
        the one the driver enforced on its port; returns it."""
        mtu = self.host(vm.host).port_mtu(vm.port)
        vm.set_mtu(mtu)
        return mtu

    def unplug_vm(self, vm: LabVM) -> None:
        """What the hypervisor does to a VM's tap when the VM stops: the port leaves the bridge
        (libvirt's del-port) and the device is gone; the namespace stays."""
        self.host(vm.host).vsctl("--if-exists", "del-port", vm.port)
        vm.run(["ip", "link", "del", "eth0"])
