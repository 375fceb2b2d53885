"""Who gets an Elastic IP, how many, for how long, and what the VM's USER_TEMPLATE keeps.

Units: the policy and the hooks against the real SQLite store, the reconcile's
judgement, oned's template semantics in the API stand-in. Lab: the hooks and
`onenat sync` on the frontend against the API stand-in and the real gateway one-0
(nft, conntrack), with one VM host one-1.
"""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import installed_lab
from lxml import etree

from onemetal.config import NatConfig, parse
from onemetal.errors import ConfigError, InputError
from onemetal.lab import drive, frontend, one_template, traffic
from onemetal.lab.samples import SampleNic, b64
from onemetal.nat import hooks, live, policy
from onemetal.nat.model import Mapping, Vnet
from onemetal.nat.store import Store
from onemetal.opennebula.resources import VmSummary

VNET = Vnet.checked(0, "192.168.0.0/24", "192.168.0.1", "10.0.0.41", 100)
SCHEDULED = ("<INPUTS><![CDATA[O|text|Your name]]></INPUTS>"
             "<SCHED_ACTION><ACTION><![CDATA[poweroff]]></ACTION><ID><![CDATA[0]]></ID>"
             "<TIME><![CDATA[+3600]]></TIME></SCHED_ACTION>"
             "<SCHED_ACTION><ACTION><![CDATA[terminate]]></ACTION><ID><![CDATA[1]]></ID>"
             "<TIME><![CDATA[+7200]]></TIME></SCHED_ACTION>")


def vm_xml(vm_id: int, gid: int = frontend.TENANT_GID, gname: str = frontend.TENANT_GROUP,
           uid: int = frontend.TENANT_UID, user: str = "") -> str:
    """A VM as oned hands it to a hook (its USER_TEMPLATE in oned's order: by name)."""
    return (f"<VM><ID>{vm_id}</ID><UID>{uid}</UID><GID>{gid}</GID><UNAME>u{uid}</UNAME>"
            f"<GNAME>{gname}</GNAME><NAME>vm{vm_id}</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"
            f"<TEMPLATE><NIC><NIC_ID>0</NIC_ID><IP><![CDATA[192.168.0.{vm_id}]]></IP>"
            f"<NETWORK_ID>0</NETWORK_ID><MAC><![CDATA[02:00:c0:a8:00:{vm_id:02x}]]></MAC></NIC>"
            f"</TEMPLATE><USER_TEMPLATE><EIP><![CDATA[yes]]></EIP>{user}</USER_TEMPLATE></VM>")


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "nat.db"))
    s.add_vnet(VNET)
    s.create_pool("aws", [(f"3.3.3.{i}", f"10.0.0.4{i}") for i in range(2, 8)])
    yield s
    s.close()


def running(store: Store, cfg: NatConfig, xml: str) -> list[str]:
    return hooks.handle("running", io.StringIO(b64(xml)), store, cfg)


# -- policy ------------------------------------------------------------------------------------
def test_a_vm_outside_the_allowed_groups_gets_no_eip_and_the_error_names_field_and_policy(store):
    cfg = NatConfig(eip_groups=("eip-users", 105))
    with pytest.raises(InputError) as refused:
        running(store, cfg, vm_xml(5, gid=101, gname="others"))
    assert str(refused.value) == ("VM[ID=5]/USER_TEMPLATE/EIP: group 101 (others) may not get an "
                                  "Elastic IP: nat.eip_groups in onemetal.conf allows eip-users, 105")
    assert store.state().mappings == ()
    assert running(store, cfg, vm_xml(6, gid=105, gname="by-id"))[0].startswith("VM 6 NIC 0")
    assert running(store, cfg, vm_xml(7, uid=3))[0].startswith("VM 7 NIC 0")


def test_no_groups_means_only_an_administrator_maps(store):
    with pytest.raises(InputError, match="allows none: only `onenat map` by an administrator"):
        running(store, NatConfig(), vm_xml(5))
    store.map(5, 0, "192.168.0.5", 0)  # what `onenat map` does
    assert running(store, NatConfig(), vm_xml(5)) == ["VM 5: already mapped"]


def test_any_group_is_admitted_with_the_star(store):
    assert running(store, NatConfig(eip_groups=("*",)), vm_xml(5, gid=7, gname="x"))[0].startswith(
        "VM 5 NIC 0")


def test_a_vm_document_without_its_owner_is_refused(store):
    xml = vm_xml(5).replace("<GID>100</GID>", "")
    with pytest.raises(InputError, match=r"^VM\[ID=5\]/GID: is missing"):
        running(store, NatConfig(eip_groups=("*",)), xml)


def test_hook_quota_counts_the_owner_and_says_which_key(store):
    cfg = NatConfig(eip_groups=("*",), eip_quota_user=1, eip_quota_group=2)
    running(store, cfg, vm_xml(5, uid=2))
    with pytest.raises(InputError, match=r"VM\[ID=6\]/USER_TEMPLATE/EIP: user 2 .*eip_quota_user"):
        running(store, cfg, vm_xml(6, uid=2))
    running(store, cfg, vm_xml(7, uid=3))
    with pytest.raises(InputError, match=r"group 100 already holds 2 .*eip_quota_group = 2"):
        running(store, cfg, vm_xml(8, uid=4))
    assert [m.vm_id for m in store.state().mappings] == [5, 7]


@pytest.mark.parametrize("text,field", [
    ('eip_groups = "eip-users"', "nat.eip_groups: must be a tuple, got str"),
    ("eip_groups = [-1]", "nat.eip_groups[0]: -1 is not a group id"),
    ('eip_groups = ["a b"]', "nat.eip_groups[0]: 'a b' contains characters"),
    ("eip_groups = [true]", "nat.eip_groups[0]: must be a group id or a group name"),
    ("eip_quota_user = -2", "nat.eip_quota_user: -2: give a count, or -1 for no limit"),
])
def test_bad_policy_settings_name_their_key(text, field):
    with pytest.raises(ConfigError) as bad:
        cfg = parse(f"[nat]\n{text}\n").nat
        policy.groups(cfg)
        policy.quota(cfg)
    assert str(bad.value).startswith(field), str(bad.value)


def test_policy_settings_parse_from_toml():
    cfg = parse('[nat]\neip_groups = ["eip-users", 0]\neip_quota_user = -1\n').nat
    assert policy.groups(cfg) == ("eip-users", 0) and policy.quota(cfg).user == -1


# -- the reconcile's judgement -------------------------------------------------------------------
def test_stale_mappings_are_those_no_live_vm_nic_backs():
    maps = [Mapping(f"3.3.3.{i}", f"10.0.0.4{i}", i, 0, f"192.168.0.{i}", 0) for i in range(2, 7)]
    live_vms = {
        3: VmSummary(3, 2, 100, 3, ((0, "192.168.0.3", 0),)),     # running, as mapped
        4: VmSummary(4, 2, 100, 8, ((1, "192.168.0.4", 0),)),     # NIC 0 detached, NIC 1 added
        5: VmSummary(5, 2, 100, 8, ((0, "192.168.0.55", 0),)),    # NIC 0 with another address
        6: VmSummary(6, 2, 100, 3, ((0, "192.168.0.6", 1),)),     # NIC 0 again, on vnet 1
    }
    assert [(m.vm_id, why) for m, why in live.stale(maps, live_vms)] == [
        (2, "VM 2 is gone (DONE or absent)"),
        (4, "VM 4 no longer has NIC 0 with 192.168.0.4 on vnet 0"),
        (5, "VM 5 no longer has NIC 0 with 192.168.0.5 on vnet 0"),
        (6, "VM 6 no longer has NIC 0 with 192.168.0.6 on vnet 0")]


# -- oned's template semantics (the API stand-in) ---------------------------------------------
def test_merge_replaces_named_attributes_and_an_empty_vector_deletes_one():
    current = one_template.parse("<USER_TEMPLATE>" + SCHEDULED + "<EIP_ADDRESS>1.2.3.4</EIP_ADDRESS>"
                                 "</USER_TEMPLATE>")
    merged = one_template.merge(current, one_template.parse('EIP_ADDRESS=[]\nA = "x \\"y\\""\n'))
    assert [name for name, _ in merged] == ["A", "INPUTS", "SCHED_ACTION", "SCHED_ACTION"]
    assert merged[0] == ("A", 'x "y"')
    shown = etree.tostring(one_template.to_element("USER_TEMPLATE", merged), encoding="unicode")
    assert shown == f"<USER_TEMPLATE><A><![CDATA[x \"y\"]]></A>{SCHEDULED}</USER_TEMPLATE>"


@pytest.mark.parametrize("text", ['A = "x]]>"', "A = [ B ]", "= 1", 'A = [B = "1" C = 2]'])
def test_templates_oned_would_refuse_are_refused(text):
    with pytest.raises(one_template.TemplateError, match="Parse error"):
        one_template.parse(text)


def test_template_text_forms_follow_oneds_parser():
    parsed = one_template.parse("# comment\nE =\nU = plain\nV = [ key = \"1\", other = 2 ]\n")
    assert parsed == [("E", ""), ("U", "plain"), ("V", {"KEY": "1", "OTHER": "2"})]


# -- lab: the hooks and `onenat sync` against the API stand-in and the real gateway ----------------
LAB_POLICY = 'eip_groups = ["eip-users"]\neip_quota_user = 2\neip_quota_group = -1\n'


@pytest.fixture(scope="module")
def eip_lab(tmp_path_factory):
    api_dir = tmp_path_factory.mktemp("api")
    with installed_lab(2, mesh=["one-0", "one-1"]) as lab:
        client = lab.add_uplink("one-0", "ens5", "10.0.0.41/24", "10.0.0.100/24")
        fe = frontend.start(lab, str(api_dir), nat_gateway="one-0", nat_interface="ens5",
                            policy=LAB_POLICY)
        nic = SampleNic(0, "192.168.0.31", "02:00:c0:a8:00:1f", vlan_id=100, mtu=None)
        [vm] = drive.deploy(lab, "one-1", 31, [nic])
        vm.route_via("192.168.0.1")
        traffic.listen(vm, 5031, lab.workdir)
        fe.onenat("vnet", "add", "0", "--subnet", "192.168.0.0/24", "--gateway", "192.168.0.1",
                  "--snat", "10.0.0.41", "--vni", "100")
        fe.onenat("pool", "create", "aws", "--addresses",
                  ",".join(f"3.3.3.{i}=10.0.0.4{i}" for i in range(2, 6)))
        yield lab, fe, client, api_dir


def hook(lab, fe, event: str, vm_id: int, api_dir):
    path = f"{lab.workdir}/frontend/var/lib/one/remotes/hooks/onemetal/nat-vm-{event}"
    xml = (api_dir / f"vm-{vm_id}.xml").read_text()
    return lab.frontend_cli(fe.env).run([path], input=b64(xml), check=False)


def user_template(api_dir, vm_id: int) -> etree._Element:
    return etree.parse(str(api_dir / f"vm-{vm_id}.xml")).getroot().find("USER_TEMPLATE")


def mapped(fe) -> dict[int, dict[str, object]]:
    return {m["vm_id"]: m for m in json.loads(fe.onenat("list", "-j").stdout)}


def test_lab_hook_gives_no_eip_to_a_vm_outside_the_allowed_groups(eip_lab):
    lab, fe, client, api_dir = eip_lab
    (api_dir / "vm-40.xml").write_text(vm_xml(40, gid=101, gname="others"))
    refused = hook(lab, fe, "running", 40, api_dir)
    assert refused.returncode == 1
    assert ("VM[ID=40]/USER_TEMPLATE/EIP: group 101 (others) may not get an Elastic IP: "
            "nat.eip_groups in onemetal.conf allows eip-users") in refused.stderr, refused.stderr
    assert 40 not in mapped(fe)
    assert user_template(api_dir, 40).find("EIP_ADDRESS") is None


def test_lab_ten_concurrent_hooks_of_one_user_stay_within_its_quota(eip_lab):
    lab, fe, client, api_dir = eip_lab
    vms = range(50, 60)
    for vm_id in vms:
        (api_dir / f"vm-{vm_id}.xml").write_text(vm_xml(vm_id))
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: hook(lab, fe, "running", i, api_dir), vms))
    print(f"ten concurrent running hooks: {time.monotonic() - started:.1f} s")
    assert sorted(r.returncode for r in results) == [0] * 2 + [1] * 8, [r.stderr for r in results]
    assert all("user 2 already holds 2 Elastic IP(s), its quota (nat.eip_quota_user = 2)"
               in r.stderr for r in results if r.returncode)
    holders = [vm for vm in mapped(fe) if vm in vms]
    assert len(holders) == 2
    for vm_id in holders:
        assert hook(lab, fe, "done", vm_id, api_dir).returncode == 0
    assert not set(mapped(fe)) & set(vms)


def test_lab_sync_releases_the_mapping_of_a_detached_nic_and_of_a_vm_whose_done_was_lost(eip_lab):
    lab, fe, client, api_dir = eip_lab
    document = api_dir / "vm-31.xml"
    document.write_text(vm_xml(31))
    for change, reason in ((lambda x: x.replace(x[x.index("<NIC>"):x.index("</NIC>") + 6], ""),
                            "VM 31 no longer has NIC 0 with 192.168.0.31"),
                           (lambda x: x.replace("<STATE>3</STATE>", "<STATE>6</STATE>"),
                            "VM 31 is gone (DONE or absent)")):
        document.write_text(vm_xml(31))
        assert hook(lab, fe, "running", 31, api_dir).returncode == 0
        eip, address = mapped(fe)[31]["eip"], mapped(fe)[31]["private_ip"]
        assert traffic.tcp_transfer(client, address, 5031)
        document.write_text(change(vm_xml(31)))  # no hook runs: the NIC went, or DONE was lost
        assert traffic.tcp_transfer(client, address, 5031)  # the stale mapping still routes
        synced = fe.onenat("sync")
        assert f"VM 31 NIC 0: EIP {eip} released: {reason}" in synced.stdout
        assert 31 not in mapped(fe)
        assert not traffic.tcp_transfer(client, address, 5031, timeout=1)
        assert fe.onenat("plan").stdout.strip() == ""
    assert fe.onenat("sync").stdout.count("released") == 0  # nothing left to release


def test_lab_user_template_keeps_every_other_attribute_through_map_and_release(eip_lab):
    lab, fe, client, api_dir = eip_lab
    (api_dir / "vm-33.xml").write_text(vm_xml(33, uid=9, user=SCHEDULED))
    before = etree.tostring(user_template(api_dir, 33))
    assert hook(lab, fe, "running", 33, api_dir).returncode == 0
    after_map = user_template(api_dir, 33)
    ours = [e for e in after_map if e.tag.startswith("EIP_")]
    mapping = mapped(fe)[33]
    assert {e.tag: e.text for e in ours} == {"EIP_ADDRESS": mapping["eip"],
                                             "EIP_PRIVATE_IP": mapping["private_ip"]}
    for e in ours:
        after_map.remove(e)
    assert etree.tostring(after_map) == before  # SCHED_ACTION twice and INPUTS, byte for byte
    assert len(after_map.findall("SCHED_ACTION")) == 2 and after_map.find("INPUTS") is not None
    assert hook(lab, fe, "done", 33, api_dir).returncode == 0
    assert etree.tostring(user_template(api_dir, 33)) == before


def test_lab_a_hook_that_changes_nothing_pushes_nothing_but_sync_always_pushes(eip_lab):
    lab, fe, client, api_dir = eip_lab
    (api_dir / "vm-35.xml").write_text(vm_xml(35, uid=11))
    assert hook(lab, fe, "running", 35, api_dir).returncode == 0  # mapped: pushed
    assert fe.onenat("plan").stdout.strip() == ""
    lab.host("one-0").run(["nft", "flush", "set", "ip", "onemetal", "pool"])  # only a push repairs
    for _ in range(2):  # poweroff and resume: RUNNING again, the store does not change
        again = hook(lab, fe, "running", 35, api_dir)
        assert again.returncode == 0 and "VM 35: already mapped" in again.stdout, again.stderr
    assert fe.onenat("plan").stdout.strip().startswith("nft: + pool ")  # nothing was pushed
    fe.onenat("sync")
    assert fe.onenat("plan").stdout.strip() == ""
    assert hook(lab, fe, "done", 35, api_dir).returncode == 0
    assert 35 not in mapped(fe) and fe.onenat("plan").stdout.strip() == ""  # released: pushed
