"""The demo's VMs, deployed, migrated and removed through the remotes as oned does.

Three VMs are namespaces (the lab is their hypervisor: it plugs them as libvirt
plugs a tap), one is a real TCG guest deployed by the VMM driver, its disk
cloned by the TM driver from the image the DS driver imported onto the share.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from onemetal.demo_lab import DATASTORES, DNS, IMAGE_DS, SYSTEM_DS, VNET_GATEWAY, VNI, DemoLab
from onemetal.lab import libvirt, one_docs, oned_tm, oned_vmm
from onemetal.lab.dhcp_watch import DhcpWatch
from onemetal.lab.drive import BRIDGE
from onemetal.lab.host import ONEADMIN_HOME
from onemetal.lab.samples import SampleNic
from onemetal.lab.vm import LabVM

NAMESPACE, GUEST = "namespace", "guest"


@dataclass(frozen=True)
class DemoVm:
    vm_id: int
    name: str
    host: str
    kind: str
    eip: bool
    vni: int = VNI  # another tenant's vnet: same subnet, another VNI

    @property
    def ip(self) -> str:
        return f"192.168.0.{self.vm_id}"

    @property
    def mac(self) -> str:
        return f"02:00:c0:a8:00:{self.vm_id:02x}"  # oned's MAC_PREFIX 02:00, then the IP

    def nic(self, mtu: int | None) -> SampleNic:
        """Its NIC on the vnet, with the MTU that vnet_create set on the vnet."""
        return SampleNic(0, self.ip, self.mac, vlan_id=self.vni, mtu=mtu)

    @property
    def vm_dir(self) -> str:
        return f"{DATASTORES}/{SYSTEM_DS}/{self.vm_id}"

    @property
    def port(self) -> str:
        return f"one-{self.vm_id}-0"


# web and db ask for an Elastic IP (EIP=yes in their user template); app leaves by SNAT; other
# is another tenant's, on its own vnet with the same subnet: nothing may reach across.
PLAN = (DemoVm(10, "web", "one-1", NAMESPACE, True), DemoVm(11, "db", "one-2", NAMESPACE, True),
        DemoVm(12, "app", "one-1", NAMESPACE, False), DemoVm(13, "guest", "one-2", GUEST, False),
        DemoVm(20, "other", "one-0", NAMESPACE, False, vni=200))
MIGRATE_VM, MIGRATE_TO = 10, "one-2"
# app (on one-1) listens for the guest's (on one-2) DHCP broadcast: its NIC works, across the mesh
WATCHER, DHCP_WATCH = 12, 120.0


def one_vm(vm: DemoVm, image: str = "", mtu: int | None = None,
           previous: DemoVm | None = None) -> one_docs.OneVm:
    """The VM as oned knows it; `previous`: where it ran before a migration."""
    disks = (one_docs.OneDisk(0, image, IMAGE_DS, "qcow2"),) if vm.kind == GUEST else ()
    vnet = one_docs.OneNet(0 if vm.vni == VNI else 1, "private", "192.168.0.0", 24,
                           gateway=VNET_GATEWAY, dns=DNS, mtu=mtu, vni=vm.vni)
    nic = replace(vm.nic(mtu), extra=(("NETWORK_ID", str(vnet.vnet_id)),))
    return one_docs.OneVm(vm_id=vm.vm_id, name=vm.name, host=vm.host, nics=(nic,),
                          disks=disks, nets=(vnet,), hid=_hid(vm.host),
                          # its disk is a blank image: SeaBIOS goes on to iPXE, which asks DHCP
                          boot=("disk0", "nic0") if vm.kind == GUEST else (),
                          previous=(previous.host, _hid(previous.host)) if previous else None,
                          user_template=(("EIP", "yes"),) if vm.eip else ())


def _hid(host: str) -> int:
    return int(host.rsplit("-", 1)[1])


@dataclass
class Deployed:
    vm: DemoVm
    deploy_id: str
    endpoint: LabVM | None  # the namespace a namespace VM lives in; None for the guest


class Fleet:
    """The demo's VMs and the oned double that deploys them."""

    def __init__(self, demo: DemoLab, image_source: str, vnet_mtu: int) -> None:
        self.demo = demo
        self.vnet_mtu = vnet_mtu
        self.mad = oned_vmm.VmmMad(demo.lab)
        self.image = image_source
        self.vms: dict[int, Deployed] = {}
        self.daemons: dict[str, libvirt.Libvirt] = {}
        self.dhcp_watch: DhcpWatch | None = None  # on WATCHER, for the guest's iPXE

    def start_libvirt(self) -> None:
        """libvirtd on every host (KVM nodes), at once: each start is mostly waiting."""
        lab = self.demo.lab
        with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
            started = pool.map(lambda h: libvirt.start(h, lab.record), lab.hosts)  # type: ignore[arg-type]
            self.daemons = {d.host.name: d for d in started}

    def docs(self, vm: DemoVm, previous: DemoVm | None = None) -> one_docs.OneVm:
        """The VM as oned describes it to the drivers (`previous`: during a migration)."""
        return one_vm(vm, self.image, self.vnet_mtu, previous)

    def register(self, vm: DemoVm) -> None:
        """The VM in the API stand-in (what one.vm.info returns to onenat and the hooks)."""
        one_docs.write_api_vm(self.demo.api.data, self.docs(vm))

    def _plug(self, vm: DemoVm) -> LabVM:
        lab = self.demo.lab
        endpoint = lab.add_vm(vm.host, f"{vm.name}-{vm.vm_id}", BRIDGE, f"{vm.ip}/24",
                              mac=vm.mac, port=vm.port)
        self.vms[vm.vm_id] = Deployed(vm, f"one-{vm.vm_id}", endpoint)
        return endpoint

    def _guest_ready(self, vm: DemoVm) -> None:
        """What oned does before the guest's deploy: context.sh, then the TM prolog."""
        fe = self.demo.lab.frontend_host
        assert fe is not None
        docs = self.docs(vm)
        context = f"{ONEADMIN_HOME}/vms/{vm.vm_id}/context.sh"
        fe.oneadmin.run(["mkdir", "-p", os.path.dirname(context)])
        fe.oneadmin.run(["tee", context], input=one_docs.context_sh(docs))
        done = oned_tm.transfer(self.demo.lab, vm.vm_id, one_docs.transfer_prolog(docs))
        if not done.ok:
            raise DemoFailed(f"TM prolog of VM {vm.vm_id}: {done.reply}")

    def deploy(self, vm: DemoVm) -> Deployed:
        docs = self.docs(vm)
        self.register(vm)
        deployment = None
        if vm.kind == GUEST:
            self._guest_ready(vm)
            deployment = one_docs.deployment(docs)
            watcher = self.vms[WATCHER].endpoint
            assert watcher is not None
            self.dhcp_watch = DhcpWatch(watcher, DHCP_WATCH)
        system = one_docs.ds_xml(SYSTEM_DS, "system", ds_type="SYSTEM_DS",
                                 base_path=f"{DATASTORES}/{SYSTEM_DS}")
        result = self.mad.deploy(
            vm.vm_id, vm.host, vnm_payload=one_docs.vnm_payload(docs),
            vm_xml=one_docs.vm_xml(docs), ds_xml=system, vm_dir=vm.vm_dir, deployment=deployment,
            plug=None if deployment else (lambda: self._plug(vm)))
        if not result.ok:
            raise DemoFailed(f"deploy of VM {vm.vm_id} on {vm.host}: {result.message}")
        if vm.kind == GUEST:
            self.vms[vm.vm_id] = Deployed(vm, result.info, None)
        else:
            endpoint = self.vms[vm.vm_id].endpoint
            assert endpoint is not None
            self.demo.lab.follow_port_mtu(endpoint)
            endpoint.route_via(VNET_GATEWAY)  # what the context's ETH0_GATEWAY sets
        return self.vms[vm.vm_id]


    def undeploy(self, vm_id: int) -> tuple[str, bool, str]:
        """The guest: cancel (vmm cancel, vnm clean), as oned's terminate --hard does; a namespace
        VM: shutdown (the lab unplugs it, vnm clean), as terminate does. Then the TM epilog; and
        the check that the VM's port and its directory on the share are gone."""
        d = self.vms[vm_id]
        docs = self.docs(d.vm)
        data = one_docs.vmm_action_data(docs, d.vm.host, deploy_id=d.deploy_id)
        if d.endpoint is None:
            result = self.mad.cancel(vm_id, d.vm.host, d.deploy_id,
                                     vnm_payload=one_docs.vnm_payload(docs), action_data=data)
        else:
            endpoint = d.endpoint
            result = self.mad.shutdown(vm_id, d.vm.host, d.deploy_id,
                                       vnm_payload=one_docs.vnm_payload(docs), action_data=data,
                                       unplug=lambda: self.demo.lab.unplug_vm(endpoint))
        if not result.ok:
            raise DemoFailed(f"terminate of VM {vm_id}: {result.message}")
        done = oned_tm.transfer(self.demo.lab, vm_id, one_docs.transfer_epilog(docs))
        if not done.ok:
            raise DemoFailed(f"TM epilog of VM {vm_id}: {done.reply}")
        ports = self.demo.lab.host(d.vm.host).vsctl("list-ports", BRIDGE).split()
        left = os.path.exists(self.demo.on_share(d.vm.vm_dir))
        del self.vms[vm_id]
        return (f"terminate {d.vm.name}", d.vm.port not in ports and not left,
                f"{' -> '.join(n for n, _ in result.steps)}; port {d.vm.port} "
                f"{'still there' if d.vm.port in ports else 'gone'}, VM directory on the share "
                f"{'still there' if left else 'gone'}")


class DemoFailed(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def moved(vm: DemoVm, host: str) -> DemoVm:
    return replace(vm, host=host)
