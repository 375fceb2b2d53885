"""deploy and cancel of remotes/vmm/onemetal over SSH as oneadmin, on a lab host with its own
libvirtd and qemu (TCG), its OVS and the mesh; module-scoped, as libvirtd starts are slow."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest
from conftest import installed_lab
from lxml import etree

from onemetal.lab import Lab, libvirt
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.samples import SampleNic, vnm_vm_xml
from onemetal.run import Result

HOSTS = ["one-0", "one-1"]
VMM = "/var/tmp/one/vmm/onemetal"
VM_DIR = "/var/lib/one/datastores/0/7"
DFILE = f"{VM_DIR}/deployment.0"
DATA = os.path.join(os.path.dirname(__file__), "data", "vmm", "deployment.0")
CONF = HOST_CONF + '[storage]\nprofile = "none"\n'
# The VM's NIC as oned sends it to every driver: no MTU on the vnet, so the maximum applies.
VM_XML = vnm_vm_xml(7, "one-0", [SampleNic(0, "10.0.7.1", "02:00:0a:00:07:01", mtu=None)])


def _deployment(disk: str = "") -> str:
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    return text.replace("\t\t<interface", disk + "\t\t<interface", 1)


def _disk(path: str) -> str:
    return (f"\t\t<disk type='file' device='disk'><source file='{path}'/>"
            f"<target dev='vda'/><driver name='qemu' type='qcow2' cache='none'/></disk>\n")


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Lab, libvirt.Libvirt]]:
    with installed_lab(2, mesh=HOSTS) as lab:
        host = lab.host("one-0")
        host.write_conf(CONF)
        daemons = libvirt.start(host, lab.record)  # type: ignore[arg-type]
        print(f"\nlibvirt on one-0 answered in {daemons.started_in:.2f} s")
        oneadmin = lab.ssh("one-0")
        # What oned does before deploy (one_vmm_exec.rb): the VM directory and vm.xml in it.
        oneadmin.run(["sh", "-c", f"mkdir -p {VM_DIR} && cat > {VM_DIR}/vm.xml"], input=VM_XML)
        oneadmin.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{VM_DIR}/disk.0", "16M"])
        try:
            yield lab, daemons
        finally:
            daemons.stop()


def _run(lab: Lab, action: str, *args: str, input: str = "") -> Result:
    return lab.ssh("one-0").run([f"{VMM}/{action}", *args], input=input, check=False)


def _deploy(lab: Lab, text: str) -> Result:
    return _run(lab, "deploy", DFILE, "one-0", "7", "one-0", input=text)


def _domains(daemons: libvirt.Libvirt) -> list[str]:
    return daemons.virsh("list", "--all", "--name").split()


def test_deploy_gives_a_running_domain_with_the_enforced_mtu_and_a_loopback_console(node) -> None:
    lab, daemons = node
    begin = time.monotonic()
    result = _deploy(lab, _deployment(_disk(f"{VM_DIR}/disk.0")))
    print(f"\ndeploy over SSH: {time.monotonic() - begin:.2f} s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == daemons.virsh("domuuid", "one-7").strip()
    assert daemons.virsh("domstate", "one-7").strip() == "running"
    live = etree.fromstring(daemons.virsh("dumpxml", "one-7").encode())
    [iface] = live.iterfind("devices/interface")
    assert iface.find("mtu").get("size") == "1450"  # underlay 1500 - VXLAN 50
    assert iface.find("virtualport").get("type") == "openvswitch"
    [graphics] = live.iterfind("devices/graphics")
    assert graphics.get("listen") == "127.0.0.1"
    assert lab.host("one-0").vsctl("get", "interface", "one-7-0", "mtu") == "1450"
    # the file holds what libvirt got, as the stock driver's does
    with open(lab.host("one-0").path(DFILE), encoding="utf-8") as f:
        assert "listen=\"127.0.0.1\"" in f.read()


def test_deploy_again_reports_the_running_domain(node) -> None:
    lab, daemons = node
    first = daemons.virsh("domuuid", "one-7").strip()
    result = _deploy(lab, _deployment())
    assert (result.returncode, result.stdout.strip()) == (0, first), result.stderr
    assert _domains(daemons) == ["one-7"]


def test_cancel_destroys_and_a_second_cancel_is_success(node) -> None:
    lab, daemons = node
    uuid = daemons.virsh("domuuid", "one-7").strip()
    begin = time.monotonic()
    result = _run(lab, "cancel", uuid, "one-0", "7")
    print(f"\ncancel over SSH: {time.monotonic() - begin:.2f} s")
    assert result.returncode == 0, result.stderr
    assert _domains(daemons) == []
    assert daemons.qemu_pids() == []
    assert _run(lab, "cancel", "one-7", "one-0", "7").returncode == 0


@pytest.mark.parametrize("conf, text, match", [
    ('[vmm]\ngraphics_policy = "refuse"\n', None, "devices/graphics[0] (vnc)"),
    ("", "<domain type='qemu'><devices/></domain>", "domain/name: missing"),
    ("", "<domain><name>one-7</name>", "not well-formed"),
    ("", None, "create"),  # libvirt refuses it: a disk that does not exist
])
def test_bad_input_fails_naming_it_and_leaves_no_domain(node, conf, text, match) -> None:
    lab, daemons = node
    lab.host("one-0").write_conf(CONF + conf)
    try:
        text = text or _deployment(_disk(f"{VM_DIR}/missing.qcow2") if match == "create" else "")
        result = _deploy(lab, text)
    finally:
        lab.host("one-0").write_conf(CONF)
    assert result.returncode != 0 and result.stdout == ""
    assert match in result.stderr and "ERROR MESSAGE --8<------" in result.stderr
    assert _domains(daemons) == []


def test_a_hung_libvirtd_fails_within_the_timeout_and_a_stopped_one_at_once(node) -> None:
    lab, daemons = node
    lab.host("one-0").write_conf(CONF + "[vmm]\ncall_timeout = 2.0\n")
    libvirtd = daemons.pids[-1]
    os.kill(libvirtd, signal.SIGSTOP)
    try:
        begin = time.monotonic()
        result = _deploy(lab, _deployment())
        hung = time.monotonic() - begin
    finally:
        os.kill(libvirtd, signal.SIGCONT)
    print(f"\nhung libvirtd: failed after {hung:.2f} s (call_timeout 2 s)")
    assert result.returncode != 0
    assert "did not answer within 2 s" in result.stderr and "one-7" in result.stderr
    daemons.stop_daemons()
    result = _deploy(lab, _deployment())
    assert result.returncode != 0
    assert "one-7: connect to qemu:///system" in result.stderr, result.stderr
