"""The demo's OpenNebula-side steps: the vnet, the image, the Elastic IPs, the migration."""

from __future__ import annotations

import re

from onemetal.demo_lab import (DATASTORES, DNS, EIPS, IMAGE_DS, SNAT_ADDRESS, SUBNET,
                               SYSTEM_DS, VNET_GATEWAY, VNET_ID, VNI, DemoLab)
from onemetal.demo_vms import DemoFailed, Fleet, moved
from onemetal.lab import one_docs, oned_ds, spoof
from onemetal.lab.drive import BRIDGE
from onemetal.lab.samples import VN_MAD, b64
from onemetal.lab.frontend_host import REMOTES

IMAGE_FILE = "/var/tmp/demo-import/base.qcow2"
IMAGE_ID, IMAGE_MB = 0, 64


def vnet_xml(mtu: int | None = None) -> str:
    """The vnet as oned's IPAM driver passes it to vnet_create (one.vn.info's shape)."""
    mtu_attr = f"<MTU>{mtu}</MTU>" if mtu else ""
    return (f"<VNET><ID>{VNET_ID}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>"
            "<GNAME>oneadmin</GNAME><NAME>private</NAME><LOCK/><CLUSTERS><ID>0</ID></CLUSTERS>"
            f"<BRIDGE>{BRIDGE}</BRIDGE><BRIDGE_TYPE>openvswitch</BRIDGE_TYPE><STATE>0</STATE>"
            f"<PARENT_NETWORK_ID/><VN_MAD>{VN_MAD}</VN_MAD><PHYDEV/><VLAN_ID>{VNI}</VLAN_ID>"
            "<OUTER_VLAN_ID/><VLAN_ID_AUTOMATIC>0</VLAN_ID_AUTOMATIC>"
            "<OUTER_VLAN_ID_AUTOMATIC>0</OUTER_VLAN_ID_AUTOMATIC><USED_LEASES>0</USED_LEASES>"
            f"<TEMPLATE><BRIDGE>{BRIDGE}</BRIDGE><GATEWAY>{VNET_GATEWAY}</GATEWAY>"
            f"<DNS>{DNS}</DNS><NETWORK_ADDRESS>192.168.0.0</NETWORK_ADDRESS>"
            f"<NETWORK_MASK>255.255.255.0</NETWORK_MASK>{mtu_attr}<VN_MAD>{VN_MAD}</VN_MAD>"
            f"<VLAN_ID>{VNI}</VLAN_ID></TEMPLATE><AR_POOL><AR><AR_ID>0</AR_ID><IP>192.168.0.2"
            "</IP><MAC>02:00:c0:a8:00:02</MAC><SIZE>253</SIZE><TYPE>IP4</TYPE></AR></AR_POOL>"
            "</VNET>")


def create_vnet(demo: DemoLab) -> int:
    """vnet_create on the frontend as oned's IPAM MAD runs it; returns the MTU it set on the
    vnet (the overlay's, from the underlay), then the vnet's SNAT on the gateway (onenat)."""
    fe = demo.lab.frontend_host
    assert fe is not None
    done = fe.oneadmin.run([f"{REMOTES}/vnm/{VN_MAD}/vnet_create", str(VNET_ID)],
                           input=b64(vnet_xml()), check=False)
    if done.returncode != 0:
        raise DemoFailed(f"vnet_create: {done.stderr.strip()}")
    found = re.search(r'^MTU="(\d+)"$', done.stdout, re.M)
    if not found:
        raise DemoFailed(f"vnet_create set no MTU (it printed {done.stdout.strip()!r})")
    demo.onenat("vnet", "add", str(VNET_ID), "--subnet", SUBNET, "--gateway", VNET_GATEWAY,
                "--snat", SNAT_ADDRESS, "--vni", str(VNI))
    return int(found.group(1))


def import_image(demo: DemoLab) -> str:
    """A qcow2 made on the frontend, imported by DS cp onto the share; returns its SOURCE."""
    fe = demo.lab.frontend_host
    assert fe is not None
    fe.oneadmin.run(["mkdir", "-p", "/var/tmp/demo-import"])
    fe.oneadmin.run(["qemu-img", "create", "-q", "-f", "qcow2", IMAGE_FILE, f"{IMAGE_MB}M"])
    image = one_docs.OneImage(IMAGE_ID, "base", IMAGE_FILE, "qcow2", IMAGE_MB)
    ds = one_docs.ds_xml(IMAGE_DS, "images", base_path=f"{DATASTORES}/{IMAGE_DS}")
    done = oned_ds.ds_action(demo.lab, "cp", IMAGE_DS, one_docs.ds_action_data(ds, image))
    if done.returncode != 0:
        raise DemoFailed(f"DS cp of {IMAGE_FILE}: {done.stderr.strip()}")
    return done.stdout.split()[0]


def monitor_datastore(demo: DemoLab, ds_id: int) -> str:
    """DS monitor as the MAD runs it: USED_MB=... TOTAL_MB=... FREE_MB=..."""
    ds = one_docs.ds_xml(ds_id, "images", base_path=f"{DATASTORES}/{ds_id}")
    done = oned_ds.ds_action(demo.lab, "monitor", ds_id,
                             one_docs.ds_action_data(ds, one_docs.OneImage(0, "", "", "", 0)))
    if done.returncode != 0:
        raise DemoFailed(f"DS monitor of datastore {ds_id}: {done.stderr.strip()}")
    return " ".join(done.stdout.split())


def map_eips(demo: DemoLab, vm_ids: list[int]) -> dict[int, str]:
    """One pool of Elastic IPs, then `onenat map` of each VM; VM id -> the EIP's private address."""
    demo.onenat("pool", "create", "demo", "--addresses",
                ",".join(f"{eip}={private}" for eip, private in EIPS))
    mapped = {}
    for vm_id, (eip, private) in zip(vm_ids, EIPS):
        demo.onenat("map", str(vm_id), "--eip", eip)
        mapped[vm_id] = private
    return mapped


def migrate(fleet: Fleet, vm_id: int, host: str) -> str:
    """A live migration of a namespace VM through premigrate, pre, the move, clean, post and
    postmigrate, as oned sequences them."""
    d = fleet.vms[vm_id]
    assert d.endpoint is not None
    src, target = d.vm.host, moved(d.vm, host)
    docs = fleet.docs(target, previous=d.vm)  # oned's view while it migrates: both records
    endpoint: list = []

    def move() -> None:
        endpoint.append(fleet.demo.lab.move_vm(d.endpoint, host, BRIDGE))  # type: ignore[arg-type]

    result = fleet.mad.migrate(
        vm_id, src, host, d.deploy_id, vnm_payload=one_docs.vnm_payload(docs),
        vm_xml=one_docs.vm_xml(docs), system_dir=d.vm.vm_dir, ds_id=SYSTEM_DS,
        action_data=one_docs.vmm_action_data(docs, src, migr_host=host, deploy_id=d.deploy_id),
        move=move)
    if not result.ok:
        raise DemoFailed(f"migrate of VM {vm_id} {src} -> {host}: {result.message}")
    new = endpoint[0]
    fleet.demo.lab.follow_port_mtu(new)
    new.route_via(VNET_GATEWAY)
    # QEMU's announce after a migration: a gratuitous ARP, so every bridge learns where it is now
    spoof.send(new, [spoof.arp(target.mac, target.mac, target.ip, target.ip)])
    d.vm, d.endpoint = target, new
    return " -> ".join(name for name, _ in result.steps)
