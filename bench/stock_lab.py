"""OpenNebula's stock ovswitch_vxlan driver on a lab host, next to ours, for bench/vnm_actions.py.

What the stock driver creates (src/vnm_mad/remotes/ovswitch/OpenvSwitch.rb, vxlan/vxlan.rb):
pre makes a bridge of the NIC's own (BRIDGE) and a kernel VXLAN device `<PHYDEV>.<OUTER_VLAN_ID>`
(`ip link add ... type vxlan id <VNI> group 239.0.0.0+VNI dev <PHYDEV>`, multicast: no peers to
know) as a port of it; post finds the tap through `virsh dumpxml`, sets its mtu_request, VLAN tag
(the NIC's VLAN_ID), trunks and vlan_mode, and adds its flows (table 0 note + resubmit, spoofing
tables 10 and 20); clean deletes the port (and the flows of a port the tap has left already),
then the VXLAN device and the bridge once nothing else is on it, which takes the flows along.

Two things the lab supplies: libvirt, whose `virsh dumpxml` stock asks for the tap (a stand-in
that prints the domain's interface from a file, cheaper than virsh's connection to libvirtd), and
`OVS_BRIDGE_CONF="datapath_type=netdev"` on the NIC (stock's own per-vnet bridge options), since
the lab has no openvswitch kernel module.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from onemetal.lab.host import ONEADMIN_ID, LabHost
from onemetal.lab.lab import Lab
from onemetal.lab.samples import SampleNic

DRIVER = "ovswitch_vxlan"
PHYDEV = "br-phy"          # the lab host's underlay interface (docs/design.md, The lab)
OUTER_VLAN_ID = 200        # the VNI
VLAN_ID = 2                # the OVS tag of the VM port on stock's bridge
DOMAINS = "lab-domains"    # under oneadmin's home, where the virsh stand-in reads domains

VIRSH = """\
#!/bin/sh
# Lab stand-in for libvirt's virsh: `virsh -c URI dumpxml DOMAIN` from the lab's domain files.
[ "$3" = dumpxml ] && exec cat "/var/lib/one/%s/$4.xml"
echo "virsh (lab stand-in): only dumpxml" >&2
exit 1
""" % DOMAINS


@dataclass(frozen=True)
class StockVm:
    vm_id: int
    nic: SampleNic

    @property
    def bridge(self) -> str:
        return self.nic.bridge

    @property
    def port(self) -> str:
        return f"one-{self.vm_id}-{self.nic.nic_id}"

    @property
    def vxlan_dev(self) -> str:
        return f"{PHYDEV}.{OUTER_VLAN_ID}"


def stock_vm(vm_id: int, ip: str, mac: str) -> StockVm:
    """One NIC on a stock ovswitch_vxlan vnet, with both spoofing filters on: ours always has them."""
    extra = (("VN_MAD", DRIVER), ("PHYDEV", PHYDEV), ("OUTER_VLAN_ID", str(OUTER_VLAN_ID)),
             ("OVS_BRIDGE_CONF", "datapath_type=netdev"),
             ("FILTER_MAC_SPOOFING", "YES"), ("FILTER_IP_SPOOFING", "YES"))
    return StockVm(vm_id, SampleNic(0, ip, mac, bridge=f"onebr.{OUTER_VLAN_ID}",
                                    vlan_id=VLAN_ID, extra=extra))


def install(lab: Lab, remotes: str, tree: str) -> None:
    """Put the stock tree beside ours in the frontend's remotes (as on a real frontend) and
    sync again; then the virsh stand-in on each host, in that host's mount namespace only."""
    for base, _, names in os.walk(tree):
        for name in names:
            ours = os.path.join(remotes, os.path.relpath(os.path.join(base, name), tree))
            if os.path.exists(ours):
                raise SystemExit(f"{tree}: {name} would replace onemetal's {ours}")
    shutil.copytree(tree, remotes, dirs_exist_ok=True, symlinks=False)
    lab.sync_remotes(remotes)
    for host in lab.hosts:
        bin_dir = os.path.join(host.workdir, "lab-bin")
        os.makedirs(bin_dir, exist_ok=True)
        virsh = os.path.join(bin_dir, "virsh")
        with open(virsh, "w", encoding="ascii") as f:
            f.write(VIRSH)
        os.chmod(virsh, 0o755)
        # The stand-in must be the virsh oneadmin's PATH finds: bound over the real one when
        # libvirt's client is installed (the lab's libvirt), else on /usr/games, which is on
        # the PATH sshd gives oneadmin and empty here: no other tool is hidden.
        real = shutil.which("virsh", path="/usr/local/bin:/usr/bin:/bin")
        host.run(["mount", "--bind", *((virsh, real) if real else (bin_dir, "/usr/games"))])
        domains = os.path.join(host.workdir, "home", DOMAINS)
        os.makedirs(domains, exist_ok=True)
        os.chown(domains, ONEADMIN_ID, ONEADMIN_ID)


def define_domain(host: LabHost, deploy_id: str, vm: StockVm) -> None:
    """The part of libvirt's domain XML stock reads: the interface with its MAC and tap."""
    path = os.path.join(host.workdir, "home", DOMAINS, f"{deploy_id}.xml")
    with open(path, "w", encoding="ascii") as f:
        f.write(f"<domain type='kvm'><name>{deploy_id}</name><devices>"
                f"<interface type='bridge'><mac address='{vm.nic.mac}'/>"
                f"<source bridge='{vm.bridge}'/><virtualport type='openvswitch'/>"
                f"<target dev='{vm.port}'/></interface></devices></domain>")


def _ports(host: LabHost, bridge: str) -> list[str]:
    return host.vsctl("list-ports", bridge).split()


def _linkinfo(host: LabHost, dev: str) -> dict[str, object] | None:
    """`ip -d link`'s linkinfo of `dev`, or None when there is no such device."""
    result = host.run(["ip", "-d", "-j", "link", "show", dev], check=False)
    if result.returncode != 0:
        return None
    info: dict[str, object] = json.loads(result.stdout)[0].get("linkinfo", {})
    return info


def check_pre(host: LabHost, vm: StockVm) -> None:
    info = _linkinfo(host, vm.vxlan_dev) or {}
    data = info.get("info_data") or {}
    wanted = {"id": OUTER_VLAN_ID, "group": f"239.0.0.{OUTER_VLAN_ID}", "link": PHYDEV}
    if info.get("info_kind") != "vxlan" or any(
            data.get(k) != v for k, v in wanted.items()):  # type: ignore[union-attr]
        raise AssertionError(f"stock pre: {vm.vxlan_dev} is not a VXLAN device {wanted}: {info}")
    if vm.vxlan_dev not in _ports(host, vm.bridge):
        raise AssertionError(f"stock pre: {vm.vxlan_dev} is not a port of {vm.bridge}")


def check_post(host: LabHost, vm: StockVm) -> None:
    check_pre(host, vm)
    if vm.port not in _ports(host, vm.bridge):
        raise AssertionError(f"stock post: {vm.port} is not a port of {vm.bridge}")
    tag = host.vsctl("get", "port", vm.port, "tag")
    mtu = host.vsctl("get", "interface", vm.port, "mtu_request")
    if tag != str(VLAN_ID) or mtu != str(vm.nic.mtu):
        raise AssertionError(f"stock post: {vm.port} tag={tag} mtu_request={mtu}, "
                             f"wanted {VLAN_ID} and {vm.nic.mtu}")
    ofport = host.vsctl("get", "interface", vm.port, "ofport")
    flows = host.run(["ovs-ofctl", "dump-flows", vm.bridge, f"in_port={ofport}"]).stdout
    wanted = ("resubmit(,10)", f"dl_src={vm.nic.mac}", f"nw_src={vm.nic.ip}")
    missing = [w for w in wanted if w not in flows]
    if missing:
        raise AssertionError(f"stock post: no flow of port {ofport} with {missing}:\n{flows}")


def check_clean(host: LabHost, vm: StockVm) -> None:
    if host.run(["ovs-vsctl", "br-exists", vm.bridge], check=False).returncode != 2:
        raise AssertionError(f"stock clean: bridge {vm.bridge} is still there")
    if _linkinfo(host, vm.vxlan_dev) is not None:
        raise AssertionError(f"stock clean: device {vm.vxlan_dev} is still there")
