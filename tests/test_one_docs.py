"""The lab's OpenNebula documents (lab.one_docs) read by onemetal's own readers."""

from __future__ import annotations

from dataclasses import replace

import pyone.bindings
from lxml import etree

from onemetal.config import StorageConfig
from onemetal.lab import one_api
from onemetal.lab.one_docs import (OneDisk, OneImage, OneNet, OneVm, context_sh, deployment,
                                   ds_action_data, ds_xml, transfer_epilog, transfer_prolog,
                                   vm_xml, vmm_action_data, vnm_payload, write_api_vm)
from onemetal.lab.samples import VN_MAD, SampleNic, b64
from onemetal.net.vnm import nic_spec, own_nics, port_name
from onemetal.opennebula import client, payload
from onemetal.opennebula.resources import Datastore, DsAction, VmmAction
from onemetal.opennebula.vm import VM
from onemetal.run import Runner
from onemetal.storage import context, ds_request, tm_args, tm_context
from onemetal.vmm import domain_policy, domain_xml, hotplug, migrate

DS = "/var/lib/one//datastores"
CFG = StorageConfig(datastores_dir=DS)
SOURCE = f"{DS}/1/0123456789abcdef"
NET = OneNet(0, "private", "192.168.0.0", 24, "192.168.0.1", "192.168.0.1", 1450, 100)
NIC = SampleNic(0, "192.168.0.10", "02:00:c0:a8:00:0a")
WEB = OneVm(7, "web-7", "one-1", (NIC,), (OneDisk(0, SOURCE, 1),), hid=1, nets=(NET,))
HOSTILE = "it's \"q\" <b>&amp; ]]> $(touch pwned) `id`"


def _vm(text: str) -> VM:
    return VM.from_xml(payload.read_payload(text, root="VM"))


def test_the_vm_document_reads_back_in_the_drivers_views() -> None:
    vm = _vm(vm_xml(WEB))
    assert (vm.id, vm.name, vm.host, vm.host_id) == (7, "web-7", "one-1", 1)
    nic, = vm.nics
    assert (nic.ip, nic.mac, nic.bridge, nic.vn_mad, nic.mtu, nic.target, nic.vlan_id) == (
        "192.168.0.10", "02:00:c0:a8:00:0a", "br-mesh", VN_MAD, 1450, "one-7-0", 100)
    disk, = vm.disks
    assert (disk.source, disk.format, disk.datastore_id, disk.tm_mad, disk.target) == (
        SOURCE, "qcow2", 1, "onemetal", "vda")
    assert vm.context["ETH0_GATEWAY"] == "192.168.0.1" and vm.context["DISK_ID"] == "1"
    assert vm.context["ETH0_MASK"] == "255.255.255.0" and vm.context["TARGET"] == "hda"
    assert dict(vm.user_template) == {"EIP": "yes"}
    root = etree.fromstring(vm_xml(WEB).encode())
    history = root.find("HISTORY_RECORDS/HISTORY")
    assert [history.findtext(k) for k in ("SEQ", "DS_ID", "VM_MAD", "TM_MAD")] == [
        "0", "0", "onemetal", "onemetal"]
    assert root.findtext("TEMPLATE/GRAPHICS/PORT") == "5907"
    tags = [e.tag for e in root.find("TEMPLATE")]
    assert tags == sorted(tags)  # Template::to_xml's multimap order


def test_the_api_stand_in_and_the_nat_client_read_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_api_vm(str(tmp_path), WEB)
    assert path == str(tmp_path / "vm-7.xml")
    root = etree.parse(path).getroot()
    short = one_api.short_vm(root)
    assert short.findtext("TEMPLATE/NIC/IP") == "192.168.0.10" and short.findtext("UID") == "2"
    assert one_api.in_pool(root, -1, -1, -1)
    for text in (vm_xml(WEB), etree.tostring(short, encoding="unicode")):
        summary = client._summary(pyone.bindings.parseString(text.encode()), "one.vm.info")
        assert (summary.id, summary.uid, summary.gid, summary.state, summary.nics) == (
            7, 2, 100, 3, ((0, "192.168.0.10", 0),))


def test_the_vnm_payload_has_the_quirks_and_the_network_driver_reads_it() -> None:
    text = vnm_payload(WEB)
    root = etree.fromstring(text.encode())
    # get_vnm_drivers' XPATH_LIST: HOSTNAME, HID, DS_ID and VM_MAD each in a HISTORY_RECORDS
    assert [h[0][0].tag for h in root.findall("HISTORY_RECORDS")] == ["HOSTNAME", "HID", "DS_ID",
                                                                     "VM_MAD"]
    # a TEMPLATE per hit: the CONTEXT, then the NIC (no security group rule, so no TEMPLATE)
    assert [[e.tag for e in t] for t in root.findall("TEMPLATE")] == [["CONTEXT"], ["NIC"]]
    vm = VM.from_xml(payload.read_payload(b64(text), root="VM"))
    assert (vm.host, vm.host_id, [n.ip for n in vm.nics_for(VN_MAD)]) == ("one-1", 1, ["192.168.0.10"])
    nic, = own_nics(vm)
    assert port_name(vm, nic) == "one-7-0" and nic_spec(vm, nic, "br-mesh", 1450).mtu == 1450
    assert vm.context["ETH0_IP"] == "192.168.0.10"


def test_the_vmm_action_data_reads_as_the_vmm_scripts_read_it() -> None:
    deploy = migrate.action_data(vmm_action_data(WEB, "one-1"))
    assert (deploy.findtext("HOST"), deploy.findtext("MIGR_HOST"), deploy.findtext("DEPLOY_ID")) == (
        "one-1", "", "")
    assert deploy.findtext("REMOTE_DEPLOYMENT_FILE") == f"{DS}/0/7/deployment.0"
    assert VM.from_xml(hotplug.vm_of(deploy)).disks[0].source == SOURCE
    moving = migrate.action_data(b64(vmm_action_data(WEB, "one-1", migr_host="one-2",
                                                     deploy_id="one-7")))
    assert (moving.findtext("MIGR_HOST"), moving.findtext("DEPLOY_ID")) == ("one-2", "one-7")
    assert migrate.shared(moving) and moving.findtext("DATASTORE/BASE_PATH") == f"{DS}/0"
    assert moving.findtext("LOCAL_DEPLOYMENT_FILE") == ""


def test_a_system_datastore_in_the_vmm_action_data_reads() -> None:
    text = vmm_action_data(WEB, "one-1")
    assert "<DS_MAD><![CDATA[-]]></DS_MAD>" in text
    action = VmmAction.from_xml(payload.read_payload(text))
    assert (action.datastore.id, action.datastore.type, action.datastore.tm_mad) == (0, "SYSTEM", "onemetal")


def test_the_deployment_file_passes_deploy_and_holds_what_libvirtdriverkvm_writes() -> None:
    text = deployment(WEB)
    vm_dir = f"{DS}/0/7"
    root = domain_xml.parse(text)
    domain_policy.check(root, DS, vm_dir)
    mtus = {port_name(_vm(vm_xml(WEB)), n): 1450 for n in own_nics(_vm(vm_xml(WEB)))}
    name, rewritten = domain_xml.rewrite(text, mtus, "127.0.0.1", "rewrite",
                                         "7", (DS, vm_dir))
    assert name == "one-7" and "<mtu size=\"1450\"/>" in rewritten
    assert [e.tag for e in root] == ["name", "title", "vcpu", "cputune", "memory", "os", "devices",
                                     "features", "metadata"]
    disk, cd = root.findall("devices/disk")
    assert (disk.get("device"), disk.find("source").get("file"), disk.find("target").get("dev"),
            disk.find("driver").attrib) == ("disk", f"{vm_dir}/disk.0", "vda",
                                            {"name": "qemu", "type": "qcow2", "cache": "none"})
    assert (cd.get("device"), cd.find("source").get("file"), cd.find("target").get("dev"),
            cd.find("readonly") is not None) == ("cdrom", f"{vm_dir}/disk.1", "hda", True)
    nic = root.find("devices/interface")
    assert (nic.get("type"), nic.find("virtualport").get("type"), nic.find("source").get("bridge"),
            nic.find("mac").get("address"), nic.find("target").get("dev"),
            nic.find("model").get("type")) == ("bridge", "openvswitch", "br-mesh", NIC.mac,
                                               "one-7-0", "virtio")
    assert root.find("devices/graphics").attrib == {"type": "vnc", "listen": "0.0.0.0", "port": "5907"}
    assert root.find("features/acpi") is not None and root.get("type") == "qemu"
    one = "{http://opennebula.org/xmlns/libvirt/1.0}"
    meta = root.find(f"metadata/{one}vm")
    assert [e.tag.replace(one, "") for e in meta][:9] == [
        "system_datastore", "name", "uname", "uid", "gname", "gid", "opennebula_version", "stime",
        "deployment_time"]
    assert meta.findtext(f"{one}system_datastore") == vm_dir
    assert domain_xml.parse(deployment(WEB, domain_type="kvm")).get("type") == "kvm"


def test_the_transfer_lines_pass_the_tm_argument_parsers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clone, ctx = transfer_prolog(WEB).splitlines()
    verb, mad, src, dst, vmid, dsid = clone.split()
    assert (verb, mad) == ("CLONE", "onemetal")
    tm_args.expect(clone.split()[2:], ("SRC", "DST", "VMID", "DSID"), "tm-clone")
    assert tm_args.datastore_path(src, CFG, "SRC") == ("frontend", f"{DS}/1/0123456789abcdef".replace("//", "/"))
    target = tm_args.disk_file(dst, CFG, "DST", tm_args.number(vmid, "VMID"))
    assert (target.host, target.ds_id, tm_args.disk_id(target), tm_args.number(dsid, "DSID")) == (
        "one-1", 0, 0, 1)
    verb, mad, sh, dst, vmid, dsid = ctx.split()
    assert (verb, sh, dsid) == ("CONTEXT", "/var/lib/one/vms/7/context.sh", "0")
    assert tm_args.disk_id(tm_args.disk_file(dst, CFG, "DST", 7)) == 1
    own = tmp_path / "context.sh"
    own.write_text(context_sh(WEB))
    request = tm_context.request([str(own)], DS)
    assert '"ETH0_IP": "192.168.0.10"' in request and '"DISK_ID": "1"' in request
    lines = [line.split() for line in transfer_epilog(WEB).splitlines()]
    assert lines == [["DELETE", "onemetal", f"one-1:{DS}/0/7/disk.0", "7", "1"],
                     ["DELETE", "onemetal", f"one-1:{DS}/0/7", "7", "0"]]
    for words in lines:  # what tm delete checks
        tm_args.expect(words[2:], ("DST", "VMID", "DSID"), "tm-delete")
        assert tm_args.vm_file(words[2], CFG, "DST", tm_args.number(words[3], "VMID")).vm_id == 7
    assert tm_args.vm_file(lines[1][2], CFG, "DST", 7).path == "/var/lib/one/datastores/0/7"


def test_the_datastore_documents_pass_the_ds_request_parser() -> None:
    images = ds_xml(1, "images", base_path=f"{DS}/1")
    image = OneImage(3, "alpine", "/var/tmp/import/a.qcow2", "qcow2", 16, source=SOURCE)
    request = ds_request.parse(b64(ds_action_data(images, image)), "3")
    assert request.base_path(CFG) == "/var/lib/one/datastores/1"
    assert request.source(CFG) == "/var/lib/one/datastores/1/0123456789abcdef"
    assert request.text("IMAGE/PATH") == image.path and request.text("DATASTORE/DS_MAD") == "onemetal"
    action = DsAction.from_xml(payload.read_payload(ds_action_data(images, image)))
    assert (action.image.id, action.image.format, action.image.size_mb, action.datastore.type) == (
        3, "qcow2", 16, "IMAGE")
    monitor = ds_request.parse(b64(ds_action_data(images)), "1")
    assert monitor.root.find("IMAGE") is None and monitor.text("DATASTORE/ID") == "1"
    system = payload.read_payload(b64(ds_action_data(
        ds_xml(0, "system", base_path=f"{DS}/0", ds_type="SYSTEM_DS"), location=DS,
        monitor_vm_disks=True)), root="DS_DRIVER_ACTION_DATA")
    assert (system.findtext("DATASTORE_LOCATION"), system.findtext("MONITOR_VM_DISKS")) == (DS, "1")
    ds = Datastore.from_xml(payload.read_payload(images, root="DATASTORE"))
    assert (ds.name, ds.ds_mad, ds.tm_mad, ds.base_path) == ("images", "onemetal", "onemetal", f"{DS}/1")


def _hostile() -> OneVm:
    return OneVm(8, HOSTILE, "one-2", (NIC,), (OneDisk(0, SOURCE, 1),), nets=(NET,),
                 user_template=(("EIP", "yes"), ("NOTE", HOSTILE + "\nline2")),
                 extra_context=(("VAR", HOSTILE + "\nEOT\n'\\''"),))


def test_hostile_values_stay_text_in_every_document() -> None:
    vm = _hostile()
    value = HOSTILE + "\nEOT\n'\\''"
    for text, name in ((vm_xml(vm), HOSTILE), (vnm_payload(vm), None),  # the VNM XPaths skip NAME
                       (vmm_action_data(vm, "one-2"), HOSTILE)):
        root = payload.read_payload(text)
        read = VM.from_xml(root if root.tag == "VM" else root.find("VM"))
        assert (read.name, read.context["VAR"], read.user_template["NOTE"]) == (
            name, value, HOSTILE + "\nline2")
    root = domain_xml.parse(deployment(vm))
    domain_policy.check(root, DS, f"{DS}/0/8")
    assert root.findtext("title") == HOSTILE
    assert root.findtext("{*}metadata/{*}vm/{*}name") == HOSTILE
    assert context.parse(context_sh(vm))["VAR"] == value


def test_context_sh_sourced_by_bash_expands_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "context.sh"
    path.write_text(context_sh(_hostile()))
    out = Runner().run(["bash", "-c", 'cd "$2" && . "$1"; printf %s "$VAR"', "bash", str(path),
                        str(tmp_path)], timeout=10)
    assert out.stdout == HOSTILE + "\nEOT\n'\\''" and out.stderr == ""
    assert not (tmp_path / "pwned").exists()
    assert path.read_text().splitlines()[0] == "# Context variables generated by OpenNebula"


def test_os_boot_orders_the_devices_as_oned_does() -> None:
    """OS/BOOT="disk0,nic0": ORDER 1 on the disk and 2 on the NIC (parse_boot), written as each
    device's <boot order/>; the deployment still passes deploy's policy."""
    vm = replace(WEB, boot=("disk0", "nic0"))
    root = domain_xml.parse(deployment(vm))
    domain_policy.check(root, DS, f"{DS}/0/7")
    disk, cd = root.findall("devices/disk")
    assert disk.find("boot").get("order") == "1" and cd.find("boot") is None
    assert root.find("devices/interface/boot").get("order") == "2"
    assert root.find("os/boot") is None  # per device, never both (libvirt refuses the mix)
    template = etree.fromstring(vm_xml(vm).encode()).find("TEMPLATE")
    assert template.findtext("OS/BOOT") == "disk0,nic0" and template.findtext("DISK/ORDER") == "1"
    assert deployment(WEB).count("<boot ") == 0


def test_libvirt_accepts_the_deployment_files_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    booted = replace(WEB, vm_id=10, boot=("disk0", "nic0"))
    for vm in (WEB, booted, _hostile(), OneVm(9, "bare", "one-0", (NIC,), context=False)):
        path = tmp_path / f"deployment.{vm.vm_id}"
        path.write_text(deployment(vm))
        result = Runner().run(["virt-xml-validate", str(path), "domain"], timeout=30)
        assert result.returncode == 0 and "validates" in result.stderr + result.stdout


def test_the_context_takes_the_nics_value_then_the_vnets_and_keeps_the_empty_ones() -> None:
    own = SampleNic(1, "192.168.0.11", "02:00:c0:a8:00:0b", extra=(("GATEWAY", "192.168.0.254"),))
    values = context.parse(context_sh(OneVm(9, "two", "one-0", (NIC, own), nets=(NET,))))
    assert (values["ETH0_GATEWAY"], values["ETH1_GATEWAY"]) == ("192.168.0.1", "192.168.0.254")
    assert (values["ETH1_MTU"], values["ETH1_VLAN_ID"], values["ETH1_IP6"]) == ("1450", "100", "")
    assert values["DISK_ID"] == "0" and "ETH1_ROUTES" in values
    alone = context.parse(context_sh(OneVm(9, "alone", "one-0", (NIC,))))
    assert (alone["ETH0_MTU"], alone["ETH0_GATEWAY"]) == ("", "")  # no vnet to ask
    assert context.with_mtu(alone, 1450)["ETH0_MTU"] == "1450"  # what the host side writes


def test_a_migrated_vm_shows_both_placements_to_the_api_and_the_current_one_to_drivers(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    moved = OneVm(7, "web-7", "one-2", (NIC,), hid=2, previous=("one-1", 1))
    api = etree.parse(write_api_vm(str(tmp_path), moved)).getroot()
    assert [(h.findtext("SEQ"), h.findtext("HOSTNAME"), h.findtext("ACTION"))
            for h in api.iterfind("HISTORY_RECORDS/HISTORY")] == [("0", "one-1", "2"), ("1", "one-2", "0")]
    assert (_vm(etree.tostring(api, encoding="unicode")).host, _vm(vm_xml(moved)).host_id) == ("one-2", 2)
    assert len(etree.fromstring(vm_xml(moved).encode()).findall("HISTORY_RECORDS/HISTORY")) == 1
