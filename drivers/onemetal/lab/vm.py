"""A lab "VM": a network namespace whose eth0 is a veth plugged into a host's OVS bridge."""

from __future__ import annotations

from dataclasses import dataclass

from onemetal.lab import netns
from onemetal.lab.host import LabHost
from onemetal.run import Result, Runner


@dataclass(frozen=True)
class LabVM:
    name: str
    netns: str
    host: str
    port: str
    address: str

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    @property
    def runner(self) -> Runner:
        return netns.in_netns(self.netns)

    def run(self, argv: list[str], **kwargs: object) -> Result:
        return self.runner.run(argv, **kwargs)  # type: ignore[arg-type]

    def ping(self, ip: str, count: int = 1, timeout: float = 2.0, size: int | None = None,
             dont_fragment: bool = False) -> bool:
        argv = ["ping", "-n", "-q", "-c", str(count), "-W", f"{timeout:g}", "-i", "0.2"]
        if size is not None:
            argv += ["-s", str(size)]
        if dont_fragment:
            argv += ["-M", "do"]
        return self.run(argv + [ip], check=False, timeout=timeout * count + 5).returncode == 0

    def route_via(self, gateway: str) -> None:
        """The guest's default route (what the context's GATEWAY sets)."""
        self.run(["ip", "route", "replace", "default", "via", gateway])

    def set_mtu(self, mtu: int) -> None:
        """What libvirt's <mtu> does inside the guest (virtio-net's MTU feature)."""
        self.run(["ip", "link", "set", "eth0", "mtu", str(mtu)])

    @classmethod
    def plug(cls, host: LabHost, ns: str, name: str, port: str, bridge: str, address: str, *,
             mtu: int, mac: str | None, vlan: int | None) -> "LabVM":
        # Created from the VM's side: the host's namespace is named by a PID in it, since
        # its private /run hides the /run/netns names.
        netns.ROOT.run(["ip", "-n", ns, "link", "add", "eth0", "mtu", str(mtu), "type", "veth",
                        "peer", "name", port, "netns", str(host.anchor_pid), "mtu", str(mtu)])
        # The host side talks IPv6 to the guest directly (not through OVS): keep it quiet.
        host.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{port}.disable_ipv6=1"])
        # With OVS's userspace datapath the host's own stack also sees the guest's frames on
        # this device and would answer its ARP for the host's addresses (a NAT gateway's vnet
        # address), luring the guest past OVS. A kernel-datapath port never reaches the stack.
        host.run(["sysctl", "-q", "-w", f"net.ipv4.conf.{port}.arp_ignore=8"])
        host.run(["ip", "link", "set", port, "up"])
        host.run(["ethtool", "-K", port, "tx", "off"])
        tag = [f"tag={vlan}"] if vlan is not None else []
        # As libvirt plugs a tap: the port, the VM's MAC in external_ids, no tag.
        host.vsctl("--", "add-port", bridge, port, *tag,
                   "--", "set", "interface", port, f"external_ids:lab-vm={name}",
                   *([f"external_ids:attached-mac={mac}"] if mac else []))
        runner = netns.in_netns(ns)
        # IPv4 only: IPv6 router and neighbour solicitations would be traffic no test asked for.
        runner.run(["sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"])
        if mac:
            runner.run(["ip", "link", "set", "eth0", "address", mac])
        runner.run(["ip", "addr", "add", address, "dev", "eth0"])
        runner.run(["ip", "link", "set", "eth0", "up"])
        runner.run(["ethtool", "-K", "eth0", "tx", "off"])
        return cls(name=name, netns=ns, host=host.name, port=port, address=address)

