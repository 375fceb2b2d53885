"""deploy and cancel in-process against libvirt's test driver (test:///default, no daemon):
the order of checks, the write-gate, reporting a running domain, and what cancel accepts."""

from __future__ import annotations

import io
import os

import libvirt
import pytest
from lxml import etree

from onemetal.errors import InputError
from onemetal.lab.samples import SampleNic, vnm_vm_xml
from onemetal.storage.policy import WriteGateError
from onemetal.vmm import deploy
from onemetal.vmm.connection import VmmError

DATA = os.path.join(os.path.dirname(__file__), "data", "vmm", "deployment.0")


def _sample(vmid: int) -> str:
    with open(DATA, encoding="utf-8") as f:
        return f.read().replace("one-7", f"one-{vmid}")


@pytest.fixture(autouse=True)
def held():
    """test:///default keeps its domains only while a connection to it is open: hold one."""
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


@pytest.fixture
def node(tmp_path, monkeypatch):
    """onemetal.conf on libvirt's test driver; datastores under tmp_path, profile `none`."""
    def configure(profile: str = "none", extra: str = "") -> str:
        conf = tmp_path / "onemetal.conf"
        conf.write_text(f'[core]\nstate_dir = "{tmp_path}/state"\n[net]\nunderlay_mtu = 1500\n'
                        f'[storage]\ndatastores_dir = "{tmp_path}/ds"\nprofile = "{profile}"\n'
                        f'[vmm]\nuri = "test:///default"\n{extra}')
        monkeypatch.setenv("ONEMETAL_CONF", str(conf))
        return str(tmp_path / "ds")
    return configure


def _vm_dir(ds: str, vmid: int) -> str:
    path = os.path.join(ds, "0", str(vmid))
    os.makedirs(path, exist_ok=True)
    nic = SampleNic(0, "10.0.7.1", f"02:00:0a:00:07:{vmid:02x}", mtu=1400)
    with open(os.path.join(path, "vm.xml"), "w", encoding="utf-8") as f:
        f.write(vnm_vm_xml(vmid, "one-0", [nic]))
    return path


def _deploy(path: str, vmid: int, text: str) -> str:
    return deploy.deploy([path, "one-0", str(vmid), "one-0"], io.StringIO(text))


def _names() -> list[str]:
    conn = libvirt.open("test:///default")  # the same state while `held` holds one open
    try:
        return sorted(d.name() for d in conn.listAllDomains())
    finally:
        conn.close()


def test_deploy_writes_the_rewritten_file_creates_and_prints_the_uuid_once(node) -> None:
    vm_dir = _vm_dir(node(), 21)
    path = os.path.join(vm_dir, "deployment.0")
    uuid = _deploy(path, 21, _sample(21)).strip()
    assert deploy.UUID.fullmatch(uuid)
    assert "one-21" in _names()
    written = etree.parse(path).getroot()
    assert written.find("devices/interface/mtu").get("size") == "1400"  # the vnet's own MTU
    assert written.find("devices/graphics").get("listen") == "127.0.0.1"
    assert _deploy(path, 21, _sample(21)).strip() == uuid
    assert _names().count("one-21") == 1
    deploy.cancel([uuid, "one-0", "21"], io.StringIO(""))
    assert "one-21" not in _names()
    deploy.cancel([uuid, "one-0", "21"], io.StringIO(""))  # already gone: success
    deploy.cancel(["one-21", "one-0", "21"], io.StringIO(""))


def test_the_write_gate_refuses_before_anything_is_written_or_created(node) -> None:
    vm_dir = _vm_dir(node("efs"), 22)  # tmp_path is no EFS share
    path = os.path.join(vm_dir, "deployment.0")
    with pytest.raises(WriteGateError, match="refusing to write"):
        _deploy(path, 22, _sample(22))
    assert not os.path.exists(path) and "one-22" not in _names()


@pytest.mark.parametrize("where, match", [
    ("/etc/deployment.0", "outside"),
    ("{ds}/0/23/../../../../etc/x", "'..'"),
    ("deployment.0", "not an absolute path"),
])
def test_a_deployment_path_outside_the_datastores_is_refused(node, where, match) -> None:
    ds = node()
    with pytest.raises(InputError, match=match) as info:
        _deploy(where.format(ds=ds), 23, _sample(23))
    assert str(info.value).startswith("deployment file")


def test_without_vm_xml_a_nic_on_the_mesh_bridge_is_refused_naming_it(node) -> None:
    path = os.path.join(node(), "0", "24", "deployment.0")
    with pytest.raises(InputError, match="vm.xml: missing"):
        _deploy(path, 24, _sample(24))
    assert "one-24" not in _names()


def test_a_defined_but_stopped_domain_of_that_name_is_an_error_not_a_second_domain(node) -> None:
    vm_dir = _vm_dir(node(), 25)
    conn = libvirt.open("test:///default")
    try:
        conn.defineXML(_sample(25))
        with pytest.raises(VmmError, match="one-25: .* defined but not running"):
            _deploy(os.path.join(vm_dir, "deployment.0"), 25, _sample(25))
        assert not os.path.exists(os.path.join(vm_dir, "deployment.0"))
    finally:
        conn.lookupByName("one-25").undefine()
        conn.close()


@pytest.mark.parametrize("deploy_id", ["", "test", "one-7; reboot", "../one-7", "ONE-7"])
def test_cancel_refuses_what_is_neither_a_name_nor_a_uuid(node, deploy_id) -> None:
    node()
    with pytest.raises(InputError, match="deploy id"):
        deploy.cancel([deploy_id], io.StringIO(""))
    assert "test" in _names()  # the test driver's own domain is untouched
