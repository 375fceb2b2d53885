import pytest

from onemetal.errors import InputError
from onemetal.lab import samples
from onemetal.opennebula.payload import read_payload
from onemetal.opennebula.resources import DsAction, VmmAction, host_pool
from onemetal.opennebula.vm import VM, port_ranges

RULES = ("<SECURITY_GROUP_RULE><SECURITY_GROUP_ID>0</SECURITY_GROUP_ID><PROTOCOL>TCP</PROTOCOL>"
         "<RULE_TYPE>inbound</RULE_TYPE><RANGE>22,80:90</RANGE></SECURITY_GROUP_RULE>"
         "<SECURITY_GROUP_RULE><SECURITY_GROUP_ID>7</SECURITY_GROUP_ID><PROTOCOL>ICMP</PROTOCOL>"
         "<RULE_TYPE>outbound</RULE_TYPE><ICMP_TYPE>8</ICMP_TYPE></SECURITY_GROUP_RULE>")


def vm(xml: str) -> VM:
    return VM.from_xml(read_payload(xml))


def two_nic_vm(**nic_overrides) -> str:
    nics = [samples.SampleNic(0, "192.168.0.2", "02:00:c0:a8:00:02"),
            samples.SampleNic(1, "192.168.1.2", "02:00:c0:a8:01:02", vlan_id=200, **nic_overrides)]
    return samples.vnm_vm_xml(42, "one-1", nics, rules=RULES)


def test_nics_are_collected_across_repeated_templates():
    view = vm(two_nic_vm())
    assert [(n.nic_id, n.vlan_id, n.bridge, n.ip) for n in view.nics] == [
        (0, 100, "br-mesh", "192.168.0.2"), (1, 200, "br-mesh", "192.168.1.2")]
    assert view.nics_for("ovswitch_vxlan_unicast") == view.nics
    assert view.nics_for("ovswitch") == ()


def test_host_comes_from_history_split_over_several_records():
    view = vm(two_nic_vm())
    assert (view.id, view.host, view.host_id) == (42, "one-1", 0)
    assert view.context["NETWORK"] == "YES" and view.user_template["EIP"] == "yes"


def test_security_group_rules_are_matched_to_the_nic_groups():
    view = vm(two_nic_vm(security_groups="7"))
    (rule,) = view.rules_for(view.nics[0])
    assert (rule.protocol, rule.rule_type, rule.ranges) == ("TCP", "inbound", ((22, 22), (80, 90)))
    (icmp,) = view.rules_for(view.nics[1])
    assert (icmp.protocol, icmp.icmp_type) == ("ICMP", 8)


def test_automatic_vlan_id_is_the_vni_when_vlan_id_is_unset():
    xml = ("<VM><ID>1</ID><TEMPLATE><NIC><NIC_ID>0</NIC_ID><MAC>02:00:00:00:00:01</MAC>"
           "<AUTOMATIC_VLAN_ID>321</AUTOMATIC_VLAN_ID></NIC></TEMPLATE></VM>")
    assert vm(xml).nics[0].vlan_id == 321


@pytest.mark.parametrize("tag,value,field", [
    ("BRIDGE", "br;rm", "NIC[NIC_ID=0]/BRIDGE"),
    ("BRIDGE", "br/0", "NIC[NIC_ID=0]/BRIDGE"),
    ("BRIDGE", "..", "NIC[NIC_ID=0]/BRIDGE"),
    ("TARGET", "one$(id)", "NIC[NIC_ID=0]/TARGET"),
    ("MAC", "02:00:zz:00:00:01", "NIC[NIC_ID=0]/MAC"),
    ("IP", "192.168.0.300", "NIC[NIC_ID=0]/IP"),
    ("VLAN_ID", "ten", "NIC[NIC_ID=0]/VLAN_ID"),
    ("MTU", "20", "NIC[NIC_ID=0]/MTU"),
])
def test_bad_nic_values_name_the_field(tag, value, field):
    xml = (f"<VM><ID>1</ID><TEMPLATE><NIC><NIC_ID>0</NIC_ID><{tag}>{value}</{tag}>"
           "</NIC></TEMPLATE></VM>")
    with pytest.raises(InputError) as info:
        vm(xml)
    assert info.value.field == field


@pytest.mark.parametrize("tag,value", [("IP6", "fe80::1%eth0"), ("IP6_GLOBAL", "2001:db8::1%a,b=c"),
                                       ("IP6_LINK", "fe80::1%x&#10;y"), ("IP", "192.168.0.1%0")])
def test_addresses_with_a_scope_id_are_refused(tag, value):
    xml = (f"<VM><ID>1</ID><TEMPLATE><NIC><NIC_ID>0</NIC_ID><{tag}>{value}</{tag}>"
           "</NIC></TEMPLATE></VM>")
    with pytest.raises(InputError, match="scope id") as info:
        vm(xml)
    assert info.value.field == f"NIC[NIC_ID=0]/{tag}"


def test_newline_in_a_name_is_refused():
    with pytest.raises(InputError, match="BRIDGE"):
        vm("<VM><ID>1</ID><TEMPLATE><NIC><NIC_ID>0</NIC_ID><BRIDGE>br0\nx</BRIDGE></NIC></TEMPLATE></VM>")


@pytest.mark.parametrize("xml,field", [
    ("<VM><NAME>x</NAME></VM>", "VM/ID"),
    ("<VM><ID>1</ID><TEMPLATE><NIC><MAC>02:00:00:00:00:01</MAC></NIC></TEMPLATE></VM>", "NIC[0]/NIC_ID"),
])
def test_missing_required_elements_name_the_field(xml, field):
    with pytest.raises(InputError) as info:
        vm(xml)
    assert info.value.field == field


@pytest.mark.parametrize("value", ["0", "22:21", "70000", "1-5", "22,", "a"])
def test_bad_port_ranges_are_refused(value):
    with pytest.raises(InputError, match="RANGE"):
        port_ranges(value, "SECURITY_GROUP_RULE[0]/RANGE")


def test_host_pool_reads_custom_attributes():
    hosts = host_pool(read_payload(samples.host_pool_xml([(0, "one-0", "10.0.0.41"),
                                                          (3, "one-3", "10.0.0.44")])))
    assert [(h.id, h.name, h.template["TUNNEL_IP"], h.state_name) for h in hosts] == [
        (0, "one-0", "10.0.0.41", "MONITORED"), (3, "one-3", "10.0.0.44", "MONITORED")]


def test_vmm_action_data_wraps_vm_and_datastore():
    xml = ("<VMM_DRIVER_ACTION_DATA><HOST>one-1</HOST><DEPLOY_ID>one-42</DEPLOY_ID>"
           "<VM><ID>42</ID><NAME>web 1</NAME></VM><DATASTORE><ID>0</ID><NAME>system</NAME>"
           "<TYPE>1</TYPE><TM_MAD>onemetal</TM_MAD><BASE_PATH>/var/lib/one//datastores/0</BASE_PATH>"
           "</DATASTORE></VMM_DRIVER_ACTION_DATA>")
    action = VmmAction.from_xml(read_payload(xml))
    assert (action.host, action.deploy_id, action.vm.name) == ("one-1", "one-42", "web 1")
    assert action.datastore is not None and action.datastore.type == "SYSTEM"


def test_datastore_base_path_with_dotdot_is_refused():
    xml = ("<DS_DRIVER_ACTION_DATA><IMAGE><ID>3</ID><NAME>img</NAME></IMAGE><DATASTORE><ID>1</ID>"
           "<NAME>d</NAME><BASE_PATH>/var/lib/one/../../etc</BASE_PATH></DATASTORE></DS_DRIVER_ACTION_DATA>")
    with pytest.raises(InputError, match=r"DATASTORE\[ID=1\]/BASE_PATH"):
        DsAction.from_xml(read_payload(xml))


def test_views_read_the_host_parser_and_lxml_alike():
    from lxml import etree

    rule = samples.sg_rule_xml(0, "TCP", "inbound", range="22,80:90")
    xml = samples.big_vm_xml(50_000).replace("</VM>", f"<TEMPLATE>{rule}</TEMPLATE></VM>")
    assert VM.from_xml(read_payload(xml)) == VM.from_xml(etree.fromstring(xml.encode()))
    assert VM.from_xml(read_payload(xml)).security_group_rules


def test_each_security_group_rule_comes_in_a_template_of_its_own_and_all_are_read():
    """get_vnm_drivers wraps every XPath hit, so each rule has its own TEMPLATE."""
    rules = samples.sg_rule_xml(0, "TCP", "inbound", range="22") + \
        samples.sg_rule_xml(0, "ICMP", "outbound")
    text = samples.vnm_vm_xml(42, "one-1", [samples.SampleNic(0, "10.0.0.2", "02:00:0a:00:00:02")],
                              rules=rules)
    assert text.count("<TEMPLATE><SECURITY_GROUP_RULE>") == 2
    assert [r.protocol for r in VM.from_xml(read_payload(text)).security_group_rules] == \
        ["TCP", "ICMP"]
