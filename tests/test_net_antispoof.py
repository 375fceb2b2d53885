"""Anti-spoofing flows, NIC addresses and TARGET names, without a lab (pure functions)."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from onemetal.errors import InputError
from onemetal.lab.samples import SampleNic, vnm_vm_xml
from onemetal.net import pipeline
from onemetal.net.antispoof import guard, link_local, mac_only
from onemetal.net.secgroups import OPEN
from onemetal.net.targets import Claim, check_names
from onemetal.net.vnm import claims, nic_guard, own_nics
from onemetal.opennebula.vm import VM

MAC = "02:00:c0:a8:00:05"


def vm(nics, aliases=()):
    return VM.from_xml(etree.fromstring(vnm_vm_xml(5, "one-0", nics, aliases=aliases)))


def flows(g):
    return pipeline.port_flows(pipeline.VmPort(7, "one-5-0", MAC, 100, OPEN, g))


def accepted(fs):
    return [f for f in fs if f.table in (pipeline.CLASSIFY, pipeline.NEIGHBOUR) and f.actions != "drop"]


def test_link_local_is_the_eui64_of_the_mac():
    assert link_local("52:54:00:12:34:56") == "fe80::5054:ff:fe12:3456"


def test_every_accepted_frame_carries_the_mac_and_an_own_address():
    g = guard(MAC, ["192.168.0.5"], ["2001:db8::5"])
    for f in accepted(flows(g)):
        fields = dict(p.split("=", 1) for p in f.match.split(",") if "=" in p)
        assert fields["in_port"] == "7"
        if f.table == pipeline.CLASSIFY:
            assert fields["dl_src"] == MAC
        assert fields.get("arp_sha", MAC) == MAC
        assert fields.get("arp_spa", "192.168.0.5") in ("192.168.0.5", "0.0.0.0")
        assert fields.get("nw_src", "192.168.0.5") in ("192.168.0.5", "0.0.0.0")
        assert fields.get("ipv6_src", "::") in g.ipv6 + ("::",)
        assert fields.get("nd_target", g.ipv6[0]) in g.ipv6
        for option in ("nd_sll", "nd_tll"):
            assert fields.get(option, MAC) in (MAC, "00:00:00:00:00:00")


def test_unspecified_sources_only_for_dhcp_discover_probes_and_dad():
    fs = accepted(flows(guard(MAC, ["192.168.0.5"], ["2001:db8::5"])))
    zero4 = [f.match for f in fs if "nw_src=0.0.0.0" in f.match]
    assert zero4 == [f"in_port=7,dl_src={MAC},udp,nw_src=0.0.0.0,nw_dst=255.255.255.255,"
                     "tp_src=68,tp_dst=67"]
    zero6 = [f.match for f in fs if "ipv6_src=::," in f.match]
    assert all("icmp_type=133" in m or ("icmp_type=135" in m and "nd_target=" in m) for m in zero6)


def test_router_advertisements_and_redirects_are_dropped_above_everything():
    fs = [f for f in flows(guard(MAC, ["192.168.0.5"], [])) if f.table == pipeline.CLASSIFY]
    top = max(f.priority for f in fs)
    dropped = {f.match.split(",", 2)[2] for f in fs if f.priority == top and f.actions == "drop"}
    assert dropped == {"icmp6,icmp_type=134", "icmp6,icmp_type=137", "icmp,icmp_type=5",
                       "udp,tp_src=67", "udp6,tp_src=547", "icmp6,nw_frag=yes",
                       *(f"{p},nw_frag=first,tp_src=0,tp_dst=0" for p in ("tcp", "udp", "tcp6",
                                                                           "udp6"))}
    assert all(f.actions == "drop" for f in fs if f.priority == top)


def test_a_first_ipv6_fragment_passes_only_as_tcp_udp_or_esp_from_an_own_address():
    fs = [f for f in flows(guard(MAC, [], ["2001:db8::5"])) if f.table == pipeline.CLASSIFY]
    first = sorted((f.priority, f.match.split(",", 2)[2], f.actions != "drop") for f in fs
                   if "nw_frag=first" in f.match and f.priority < 120)  # 120: all drops
    ll = link_local(MAC)
    assert first == [(117, "ipv6,nw_frag=first", False)] + sorted(
        (118, f"{proto},ipv6_src={ip},nw_frag=first", True) for ip in ("2001:db8::5", ll)
        for proto in ("ipv6,nw_proto=50", "tcp6", "udp6"))
    above = [f for f in fs if f.priority > 118 and f.actions != "drop"]
    assert above == []  # nothing lets a first fragment skip the drop


def test_with_ip_checks_off_only_the_mac_is_checked():
    fs = [f for f in flows(mac_only(MAC)) if f.table == pipeline.CLASSIFY]
    assert [f.match for f in fs] == [f"in_port=7,dl_src={MAC},arp,arp_sha={MAC}",
                                     f"in_port=7,dl_src={MAC},arp", f"in_port=7,dl_src={MAC}"]


def test_nic_addresses_and_same_vnet_aliases_reach_the_guard():
    iid = link_local(MAC)[len("fe80::"):]
    n = SampleNic(0, "192.168.0.5", MAC, extra=(("IP6_GLOBAL", f"2001:DB8::{iid.upper()}"),
                                                ("IP6_ULA", f"fd00::{iid}")))
    alias = SampleNic(1, "192.168.0.6", "02:00:c0:a8:00:06",
                      extra=(("PARENT_ID", "0"), ("IP6", "2001:db8::6")))
    other = SampleNic(2, "192.168.0.7", "02:00:c0:a8:00:07", extra=(("PARENT_ID", "9"),))
    v = vm([n], aliases=[alias, other])
    [parent] = own_nics(v)
    g = nic_guard(v, parent)
    assert g.ip and g.ipv4 == ("192.168.0.5", "192.168.0.6")
    assert g.ipv6 == (f"2001:db8::{iid}", f"fd00::{iid}", "2001:db8::6",
                      link_local(MAC))


@pytest.mark.parametrize("extra", [(("NETWORK_ID", "1"),), (("VLAN_ID", "200"),),
                                   (("NETWORK_ID", "1"), ("VLAN_ID", "200"))])
def test_an_alias_from_another_vnet_gives_the_port_no_address(extra):
    alias = SampleNic(1, "192.168.0.9", "02:00:c0:a8:00:09",
                      extra=(("PARENT_ID", "0"), ("IP6", "2001:db8::9"), *extra))
    v = vm([SampleNic(0, "192.168.0.5", MAC)], aliases=[alias])
    g = nic_guard(v, own_nics(v)[0])
    assert g.ipv4 == ("192.168.0.5",) and g.ipv6 == ()


@pytest.mark.parametrize("key,address", [
    ("VROUTER_IP", "192.168.0.250"), ("IP6_LINK", "fe80::1"),
    ("IP6_GLOBAL", "2001:db8::5"), ("IP6_ULA", "fd00::c0ff:fea8:6"),
    ("IP6_LINK", "fe80::c0ff:fea8:6")])  # another MAC's
def test_addresses_the_tenant_wrote_are_not_the_nics(key, address):
    v = vm([SampleNic(0, "192.168.0.5", MAC, extra=((key, address),))])
    g = nic_guard(v, own_nics(v)[0])
    assert g.ipv4 == ("192.168.0.5",) and g.ipv6 == ()


def test_the_eui64_link_local_the_tenant_wrote_is_the_nics():
    v = vm([SampleNic(0, "192.168.0.5", MAC, extra=(("IP6_LINK", link_local(MAC)),))])
    assert nic_guard(v, own_nics(v)[0]).ipv6 == (link_local(MAC),)


@pytest.mark.parametrize("value,ip", [("NO", False), ("no", False), ("YES", True), (None, True)])
def test_ip_checks_are_on_unless_filter_ip_spoofing_is_no(value, ip):
    extra = (("FILTER_IP_SPOOFING", value),) if value else ()
    v = vm([SampleNic(0, "192.168.0.5", MAC, extra=extra)])
    assert nic_guard(v, own_nics(v)[0]).ip is ip


@pytest.mark.parametrize("key,value", [("FILTER_IP_SPOOFING", "maybe"),
                                       ("FILTER_MAC_SPOOFING", "x"), ("IP6_ULA", "192.168.0.1"),
                                       ("IP6_LINK", "fe80::zz")])
def test_bad_spoofing_attributes_name_the_field(key, value):
    with pytest.raises(InputError, match=re.escape(f"NIC[NIC_ID=0]/{key}")):
        vm([SampleNic(0, "192.168.0.5", MAC, extra=((key, value),))])


@pytest.mark.parametrize("targets,bad", [
    (("one-6-0",), "VM 6 NIC 0"), (("one-5-1",), "VM 5 NIC 1"), (("br-mesh",), "bridge itself"),
    (("tapx", "tapx"), "also the TARGET of NIC 0")])
def test_target_names_of_other_vms_or_nics_are_refused(targets, bad):
    nics = [SampleNic(i, f"192.168.0.{5 + i}", f"02:00:c0:a8:00:0{5 + i}", extra=(("TARGET", t),))
            for i, t in enumerate(targets)]
    with pytest.raises(InputError, match=re.escape(bad)) as error:
        check_names(claims(vm(nics), own_nics(vm(nics))), "br-mesh")
    assert error.value.field == f"NIC[NIC_ID={len(targets) - 1}]/TARGET"


def test_own_canonical_name_and_free_names_pass():
    check_names({"one-5-0": Claim(5, 0, MAC), "tap51": Claim(5, 1, "02:00:00:00:00:01")}, "br-mesh")
