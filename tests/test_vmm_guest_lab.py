"""A guest under remotes/vmm/onemetal in the lab, as oneadmin over SSH: a disk-less TCG guest's
iPXE DHCP request crosses the mesh to a VM on another host, and deploy refuses a hostile
deployment file leaving no domain and no file (module-scoped: one libvirtd start)."""

from __future__ import annotations

import os
from typing import Iterator

import pytest
from conftest import installed_lab
from test_vmm_lab import CONF, DFILE, HOSTS, VM_DIR, VM_XML, VMM, _deployment

from onemetal.lab import Lab, drive, libvirt
from onemetal.lab.dhcp_watch import DhcpWatch
from onemetal.lab.samples import SampleNic
from onemetal.lab.vm import LabVM
from onemetal.run import Result

GUEST_MAC = "02:00:0a:00:07:01"  # the sample deployment's NIC, VM_XML's
DHCP_WAIT = 90.0  # SeaBIOS, then iPXE's ROM, under TCG on a busy 2-core machine


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Lab, libvirt.Libvirt, LabVM]]:
    with installed_lab(2, mesh=HOSTS) as lab:
        for name in HOSTS:
            lab.host(name).write_conf(CONF)
        daemons = libvirt.start(lab.host("one-0"), lab.record)  # type: ignore[arg-type]
        oneadmin = lab.ssh("one-0")
        oneadmin.run(["sh", "-c", f"mkdir -p {VM_DIR} && cat > {VM_DIR}/vm.xml"], input=VM_XML)
        # the far end: a VM of the same vnet (VNI 100) on the other host
        [far] = drive.deploy(lab, "one-1", 8, [SampleNic(0, "10.0.7.8", "02:00:0a:00:07:08")])
        try:
            yield lab, daemons, far
        finally:
            daemons.stop()


def _deploy(lab: Lab, text: str) -> Result:
    return lab.ssh("one-0").run([f"{VMM}/deploy", DFILE, "one-0", "7", "one-0"], input=text,
                                check=False)


def test_a_diskless_guests_ipxe_dhcp_reaches_a_vm_on_another_host_through_the_mesh(node):
    lab, daemons, far = node
    drive.check(drive.vnm(lab, "one-0", "pre", [], VM_XML), "pre")
    watch = DhcpWatch(far, DHCP_WAIT + 30)
    try:
        deployed = _deploy(lab, _deployment())
        assert deployed.returncode == 0, deployed.stderr
        drive.check(drive.vnm(lab, "one-0", "post", [deployed.stdout.strip(), "one-0"], VM_XML),
                    "post")
        seen = watch.first_discover(GUEST_MAC, DHCP_WAIT)
    finally:
        watch.stop()
        lab.ssh("one-0").run([f"{VMM}/cancel", "one-7", "one-0", "7"], check=False)
        drive.vnm(lab, "one-0", "clean", ["one-0"], VM_XML)
    print(f"\niPXE DHCP DISCOVER seen on one-1: {'never' if seen is None else f'{seen:.1f} s'} "
          f"after the capture started (deploy, post, SeaBIOS, iPXE)")
    assert seen is not None, "no DHCP DISCOVER from the guest reached the VM on one-1"


@pytest.mark.parametrize("hostile, field", [
    ("<interface type='bridge'><source bridge='br-mesh'/><script path='/tmp/pwn.sh'/>"
     "</interface>", "devices/interface[1]/script"),
    ("<serial type='file'><source path='/var/lib/one/.ssh/authorized_keys'/></serial>",
     "devices/serial/source"),
    ("<qemu:commandline><qemu:arg value='-monitor'/><qemu:arg value='tcp::4444,server'/>"
     "</qemu:commandline>", "qemu:commandline"),
])
def test_a_hostile_deployment_is_refused_naming_it_with_no_domain_and_no_file(node, hostile,
                                                                               field):
    lab, daemons, _ = node
    path = lab.host("one-0").path(DFILE)
    if os.path.exists(path):
        os.unlink(path)
    text = _deployment()
    text = text.replace("\t</devices>", hostile + "\t</devices>", 1) if "qemu:" not in hostile \
        else text.replace("\t<metadata>", hostile + "\t<metadata>", 1)
    result = _deploy(lab, text)
    assert result.returncode != 0 and result.stdout == ""
    assert f"ERROR: deploy: deployment file: {field}: " in result.stderr, result.stderr
    assert daemons.virsh("list", "--all", "--name").split() == []
    assert not os.path.exists(path)


def _cdrom_source(daemons: libvirt.Libvirt) -> str:
    """What `virsh domblklist` shows for hda: a path, or "-" when empty."""
    rows = [line.split() for line in daemons.virsh("domblklist", "one-7").splitlines()[2:]]
    return next(row[1] for row in rows if row and row[0] == "hda")


def test_update_conf_ejects_and_inserts_the_context_cdrom_as_stock(node):
    lab, daemons, _ = node
    oneadmin = lab.ssh("one-0")
    for iso in ("disk.1", "disk.2"):  # the context ISO before and after the TM's context action
        oneadmin.run(["qemu-img", "create", "-q", "-f", "raw", f"{VM_DIR}/{iso}", "1M"])
    cdrom = (f"\t\t<disk type='file' device='cdrom'><source file='{VM_DIR}/disk.1'/>"
             "<target dev='hda' bus='ide'/><readonly/><driver name='qemu' type='raw'/></disk>\n")
    deployed = _deploy(lab, _deployment(cdrom))
    assert deployed.returncode == 0, deployed.stderr

    def run(action: str, *args: str) -> Result:
        return oneadmin.run([f"{VMM}/{action}", *args, "7", "one-0"], check=False)

    try:
        assert _cdrom_source(daemons) == f"{VM_DIR}/disk.1"
        # bad input first: nothing changes
        bad = run("reconfigure", "one-7", "hda", "/var/lib/one/.ssh/id_rsa")
        assert bad.returncode == 1 and "ERROR: reconfigure: iso path: " in bad.stderr
        other = run("prereconfigure", "one-7", "vda")
        assert other.returncode == 1 and "target: 'vda' is not a CD-ROM of one-7" in other.stderr
        assert _cdrom_source(daemons) == f"{VM_DIR}/disk.1"
        for _ in range(2):  # ejecting an empty drive is success, as stock
            ejected = run("prereconfigure", "one-7", "hda")
            assert ejected.returncode == 0, ejected.stderr
            assert _cdrom_source(daemons) == "-"
        inserted = run("reconfigure", "one-7", "hda", f"{VM_DIR}/disk.2")
        assert inserted.returncode == 0, inserted.stderr
        assert _cdrom_source(daemons) == f"{VM_DIR}/disk.2"
        assert run("reconfigure", "one-7", "", "").returncode == 0  # no context: nothing to do
    finally:
        oneadmin.run([f"{VMM}/cancel", "one-7", "one-0", "7"], check=False)
