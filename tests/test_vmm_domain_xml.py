"""The deployment file's checks and rewrites (onemetal.vmm.domain_xml), in-process with lxml."""

from __future__ import annotations

import os

import pytest
from lxml import etree

from onemetal.errors import ConfigError, InputError
from onemetal.vmm import domain_xml

DATA = os.path.join(os.path.dirname(__file__), "data", "vmm", "deployment.0")


def _sample() -> str:
    with open(DATA, encoding="utf-8") as f:
        return f.read()


def _with_devices(devices: str, name: str = "<name>one-7</name>") -> str:
    return f"<domain type='qemu'>{name}<devices>{devices}</devices></domain>"


def _listens(xml: str) -> list[tuple[str | None, list[str | None]]]:
    root = etree.fromstring(xml)
    return [(g.get("listen"), [l.get("address") for l in g.iterfind("listen")])
            for g in root.iterfind("devices/graphics")]


def test_the_sample_gets_the_enforced_mtu_and_a_loopback_console() -> None:
    name, xml = domain_xml.rewrite(_sample(), {"one-7-0": 1450}, "127.0.0.1", "rewrite", "7")
    root = etree.fromstring(xml)
    assert name == "one-7"
    [iface] = root.iterfind("devices/interface")
    assert [m.get("size") for m in iface.iterfind("mtu")] == ["1450"]
    assert iface.find("virtualport").get("type") == "openvswitch"
    assert _listens(xml) == [("127.0.0.1", ["127.0.0.1"])]
    # what is not ours stays: the metadata oned's probes read, the CDATA emulator path
    assert root.find("devices/emulator").text == "/usr/bin/qemu-system-x86_64"
    assert root.find("{*}metadata") is not None or root.find("metadata") is not None


def test_mtu_per_interface_only_on_the_vms_ports_and_an_old_one_replaced() -> None:
    devices = ("<interface type='bridge'><target dev='one-7-0'/><mtu size='9000'/></interface>"
               "<interface type='bridge'><target dev='one-7-1'/></interface>"
               "<interface type='bridge'><target dev='other'/></interface>"
               "<interface type='bridge'/>")
    _, xml = domain_xml.rewrite(_with_devices(devices), {"one-7-0": 1450, "one-7-1": 1400},
                                "127.0.0.1", "rewrite")
    sizes = [[m.get("size") for m in i.iterfind("mtu")]
             for i in etree.fromstring(xml).iterfind("devices/interface")]
    assert sizes == [["1450"], ["1400"], [], []]


@pytest.mark.parametrize("graphics", [
    "<graphics type='vnc' listen='0.0.0.0' port='5907'/>",
    "<graphics type='vnc' listen='::'/>",
    "<graphics type='spice'/>",  # no listen: qemu.conf's default, which may be 0.0.0.0
    "<graphics type='vnc'><listen type='address' address='0.0.0.0'/></graphics>",
    "<graphics type='vnc' listen='10.0.0.1'><listen type='network' network='public'/></graphics>",
])
def test_every_network_console_listens_on_the_configured_address(graphics: str) -> None:
    _, xml = domain_xml.rewrite(_with_devices(graphics), {}, "127.0.0.1", "rewrite")
    assert _listens(xml) == [("127.0.0.1", ["127.0.0.1"])]


def test_a_management_address_can_be_configured_and_a_socket_console_is_left_alone() -> None:
    devices = ("<graphics type='vnc' listen='0.0.0.0'/>"
               "<graphics type='vnc'><listen type='socket' socket='/run/vnc.sock'/></graphics>")
    _, xml = domain_xml.rewrite(_with_devices(devices), {}, "10.9.0.5", "rewrite")
    assert _listens(xml) == [("10.9.0.5", ["10.9.0.5"]), (None, [None])]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "0:0::0", "ff02::1", "localhost", ""])
def test_an_open_or_invalid_console_address_in_the_config_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="vmm.graphics_listen"):
        domain_xml.rewrite(_sample(), {}, address, "rewrite")


def test_refuse_policy_fails_naming_the_console_and_allows_what_is_already_safe() -> None:
    with pytest.raises(InputError, match=r"devices/graphics\[0\] \(vnc\).*'0.0.0.0'"):
        domain_xml.rewrite(_sample(), {}, "127.0.0.1", "refuse")
    safe = _with_devices("<graphics type='vnc' listen='127.0.0.1'/><graphics type='spice'/>")
    _, xml = domain_xml.rewrite(safe, {}, "127.0.0.1", "refuse")
    assert _listens(xml) == [("127.0.0.1", ["127.0.0.1"])] * 2
    with pytest.raises(ConfigError, match="vmm.graphics_policy"):
        domain_xml.rewrite(safe, {}, "127.0.0.1", "ignore")


@pytest.mark.parametrize("text, match", [
    ("<domain><name>one-7</name>", "not well-formed"),
    ("", "not well-formed"),
    ("<domain type='qemu'><devices/></domain>", r"domain/name: missing"),
    ("<domain><name> </name></domain>", r"domain/name: missing"),
    ("<domain><name>evil</name></domain>", "not OpenNebula's name"),
    ("<vm><name>one-7</name></vm>", "not <domain>"),
    ("<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/shadow'>]>"
     "<domain><name>one-7</name><title>&x;</title></domain>", "DOCTYPE|entity"),
    ("<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/x.dtd'><domain><name>one-7</name></domain>",
     "DOCTYPE"),
    ("<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
     "<domain><name>one-7</name><title>&b;</title></domain>", "DOCTYPE|entity"),
    ("<domain><name>one-7</name>" + "<x/>" * (domain_xml.MAX_BYTES // 4) + "</domain>",
     "larger than"),
])
def test_bad_deployment_files_are_refused_naming_the_field(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        domain_xml.rewrite(text, {}, "127.0.0.1", "rewrite")
    assert str(info.value).startswith("deployment file")


def test_the_name_must_be_the_vms_own() -> None:
    with pytest.raises(InputError, match="not OpenNebula's name one-8"):
        domain_xml.rewrite(_sample(), {}, "127.0.0.1", "rewrite", "8")
