"""What the demo checks, as an operator would see it: each function returns report rows."""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor

from lxml import etree

from onemetal.demo_lab import (CLIENT_ADDRESS, DATASTORES, EIPS, SNAT_ADDRESS, VNI, DemoLab)
from onemetal.demo_report import Check, EgressRow, EipRow, Matrix, MountRow, NicRow
from onemetal.demo_vms import GUEST, WATCHER, Deployed, Fleet
from onemetal.lab import traffic
from onemetal.lab.drive import BRIDGE
from onemetal.net.mtu import overlay_mtu
from onemetal.storage import mounts

ECHO_PORT = 5000        # a listener in every namespace VM, for the internet client
INTERNET_PORT = 7000    # a listener on the internet client, for egress


def _endpoints(fleet: Fleet) -> list[Deployed]:
    return [d for d in fleet.vms.values() if d.endpoint is not None]


def matrix(fleet: Fleet) -> Matrix:
    """Every namespace VM pings every other: same vnet reaches, another vnet (VNI) must not."""
    ends = _endpoints(fleet)
    pairs = list(itertools.permutations(ends, 2))
    expected = {(a.vm.name, b.vm.name): a.vm.vni == b.vm.vni for a, b in pairs}
    # at once: a blocked pair costs its whole timeout
    with ThreadPoolExecutor(max_workers=len(pairs) or 1) as pool:
        answers = pool.map(lambda p: p[0].endpoint.ping(p[1].vm.ip, count=2, timeout=1.0), pairs)
        reach = {(a.vm.name, b.vm.name): ok for (a, b), ok in zip(pairs, answers)}
    return Matrix(vms=[d.vm.name for d in ends], reach=reach, expected=expected)


def path_mtu(fleet: Fleet, src: int, dst: int) -> Check:
    """A don't-fragment ping that fills the guest's MTU crosses the tunnel: no black hole."""
    a, b = fleet.vms[src], fleet.vms[dst]
    assert a.endpoint is not None
    mtu = int(a.endpoint.run(["cat", "/sys/class/net/eth0/mtu"]).stdout)
    ok = a.endpoint.ping(b.vm.ip, count=2, timeout=1.0, size=mtu - 28, dont_fragment=True)
    return Check(f"path MTU {a.vm.name}->{b.vm.name}", ok,
                 f"{mtu}-byte packets, don't fragment, {a.vm.host} -> {b.vm.host}: "
                 f"{'crossed' if ok else 'lost'}")


def _guest_mtu(fleet: Fleet, deployed: Deployed) -> int:
    """The MTU libvirt gave the guest's virtio NIC (the live domain's <mtu size=.../>)."""
    domain = fleet.daemons[deployed.vm.host].virsh("dumpxml", f"one-{deployed.vm.vm_id}")
    live = etree.fromstring(domain.encode())
    sizes = [e.get("size") for e in live.iterfind("devices/interface/mtu")]
    return int(sizes[0]) if sizes and sizes[0] else 0


def nics(fleet: Fleet) -> list[NicRow]:
    demo = fleet.demo
    want = overlay_mtu(demo.lab.underlay_mtu)
    rows = []
    for d in fleet.vms.values():
        port_mtu = demo.lab.host(d.vm.host).port_mtu(d.vm.port)
        if d.endpoint is None:
            guest = _guest_mtu(fleet, d)
        else:
            guest = int(d.endpoint.run(["cat", "/sys/class/net/eth0/mtu"]).stdout)
        rows.append(NicRow(vm=d.vm.name, host=d.vm.host, port=d.vm.port, port_mtu=port_mtu,
                           guest_mtu=guest, expected_mtu=want))
    return rows


def listen_everywhere(fleet: Fleet) -> None:
    """A listener in every namespace VM and on the internet client, each accepting before this
    returns (bounded)."""
    workdir = fleet.demo.lab.workdir
    places = [(d.endpoint, ECHO_PORT) for d in _endpoints(fleet)]
    places.append((fleet.demo.client, INTERNET_PORT))
    for vm, port in places:
        traffic.listen(vm, port, workdir)  # type: ignore[arg-type]
    for vm, port in places:
        traffic.wait_listening(vm, port)  # type: ignore[arg-type]


def eips(fleet: Fleet, mapped: dict[int, str]) -> list[EipRow]:
    """`mapped`: VM id -> the private address of its EIP on the gateway's ENI. The client's
    connection must reach that VM (its listener says which VM answered), and the VM must
    leave from the EIP's address."""
    public = {private: eip for eip, private in EIPS}
    rows = []
    for vm_id, private in sorted(mapped.items()):
        d = fleet.vms[vm_id]
        assert d.endpoint is not None
        answered = traffic.answered_by(fleet.demo.client, private, ECHO_PORT)
        seen = traffic.seen_from(d.endpoint, CLIENT_ADDRESS, INTERNET_PORT) or "nothing"
        rows.append(EipRow(vm=d.vm.name, eip=public.get(private, "?"), private_ip=private,
                           reachable=answered == d.vm.ip, egress_seen=seen,
                           egress_expected=private))
    return rows


def egress(fleet: Fleet, mapped: dict[int, str]) -> list[EgressRow]:
    """Where the VMs without an EIP leave from: the vnet's SNAT address; a VM of a vnet the
    gateway does not NAT reaches nothing."""
    rows = []
    for d in _endpoints(fleet):
        if d.vm.vm_id in mapped:
            continue
        seen = traffic.seen_from(d.endpoint, CLIENT_ADDRESS, INTERNET_PORT,  # type: ignore[arg-type]
                                 timeout=1.0 if d.vm.vni != VNI else 3.0)
        rows.append(EgressRow(vm=d.vm.name, seen=seen or "nothing",
                              expected=SNAT_ADDRESS if d.vm.vni == VNI else "nothing"))
    return rows


def placement(fleet: Fleet, vm_id: int, src: str) -> list[Check]:
    """After a migration from `src`: the VM's port is on its new host's bridge and gone from the
    old one, and the VM reaches the others of its vnet from there."""
    d = fleet.vms[vm_id]
    lab = fleet.demo.lab
    here = d.vm.port in lab.host(d.vm.host).vsctl("list-ports", BRIDGE).split()
    there = d.vm.port in lab.host(src).vsctl("list-ports", BRIDGE).split()
    peers = [p for p in _endpoints(fleet) if p.vm.vni == d.vm.vni and p is not d]
    assert d.endpoint is not None
    reached = [p.vm.name for p in peers if d.endpoint.ping(p.vm.ip, count=2, timeout=1.0)]
    return [Check(f"{d.vm.name} placed on {d.vm.host}", here and not there,
                  f"port {d.vm.port}: {'on' if here else 'not on'} {d.vm.host}'s bridge, "
                  f"{'still' if there else 'gone'} on {src}'s"),
            Check(f"{d.vm.name} reaches its vnet from {d.vm.host}", len(reached) == len(peers),
                  f"reached {', '.join(reached) or 'none'} of "
                  f"{', '.join(p.vm.name for p in peers)}")]


def datastore_mounts(demo: DemoLab) -> list[MountRow]:
    """The datastores' mount on the frontend and each host, as its mountinfo says."""
    rows = []
    for host in [demo.lab.host("frontend"), *demo.lab.hosts]:
        found = [m for m in mounts.read(f"/proc/{host.anchor_pid}/mountinfo")
                 if m.mount_point == DATASTORES]
        if not found:
            rows.append(MountRow(host=host.name, mount_point=DATASTORES, fstype="-", source="-",
                                 ok=False, detail="not mounted"))
            continue
        m = found[-1]
        ok = m.fstype == "fuse.nfs4" and m.source == demo.share.source
        rows.append(MountRow(host=host.name, mount_point=DATASTORES, fstype=m.fstype,
                             source=m.source, ok=ok,
                             detail="" if ok else f"want fuse.nfs4 from {demo.share.source}"))
    return rows


DHCP_WAIT = 60.0  # SeaBIOS then iPXE under TCG: ~3 s here, far more on a loaded machine


def guest_dhcp(fleet: Fleet) -> Check:
    """The guest's iPXE DHCP request reached the watcher VM on another host: the guest's NIC,
    plugged by libvirt, carries its frames on the vnet through the mesh."""
    watch, guest = fleet.dhcp_watch, next(d for d in fleet.vms.values() if d.vm.kind == GUEST)
    watcher = fleet.vms[WATCHER]
    if watch is None:
        return Check(f"{guest.vm.name} NIC on the vnet", False, "no capture was started")
    try:
        seen = watch.first_discover(guest.vm.mac, DHCP_WAIT)
    finally:
        watch.stop()
        fleet.dhcp_watch = None
    return Check(f"{guest.vm.name} NIC on the vnet", seen is not None,
                 f"its iPXE DHCP DISCOVER reached {watcher.vm.name} on {watcher.vm.host} "
                 + (f"{seen:.1f} s after its deploy began" if seen is not None
                    else f"never within {DHCP_WAIT:g} s"))


def guest_checks(fleet: Fleet) -> list[Check]:
    """The TCG guest: running under libvirt, its disk an overlay of the image on the share."""
    checks = []
    for d in fleet.vms.values():
        if d.vm.kind != GUEST:
            continue
        state = fleet.daemons[d.vm.host].virsh("domstate", f"one-{d.vm.vm_id}").strip()
        checks.append(Check(f"{d.vm.name} running under libvirt", state == "running",
                            f"one-{d.vm.vm_id} on {d.vm.host}: {state}, deploy id {d.deploy_id}"))
        disk = fleet.demo.on_share(f"{d.vm.vm_dir}/disk.0")
        info = fleet.demo.share.host.run(["qemu-img", "info", "-U", "--output=json", disk],
                                         check=False)
        backing = json.loads(info.stdout).get("backing-filename", "") if not info.returncode else ""
        checks.append(Check(f"{d.vm.name} disk cloned on the share",
                            os.path.normpath(backing) == os.path.normpath(fleet.image),
                            "disk.0 on the NFS server is a qcow2 overlay of "
                            f"{backing or 'nothing'}"))
    return checks
