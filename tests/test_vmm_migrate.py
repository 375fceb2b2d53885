"""migrate and migrate_local of remotes/vmm/onemetal over SSH as oneadmin, between two lab hosts
each with its own libvirtd (own hostname and host UUID), a disk-less TCG guest; module-scoped."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import pytest
from conftest import installed_lab
from lxml import etree
from test_vmm_lab import CONF, DATA, DFILE, VM_DIR, VM_XML, VMM, _deployment, _disk
from tm_lab import make_frontend, share_datastores

from onemetal.errors import InputError
from onemetal.lab import Lab, libvirt
from onemetal.lab.samples import vnm_vm_xml
from onemetal.run import Result

HOSTS = ["one-0", "one-1"]
# VM 8: no NIC, one qcow2 disk in the system datastore both hosts share
DISK_DIR = "/var/lib/one/datastores/0/8"
DISK_VM = vnm_vm_xml(8, "one-0", [])


def _disk_deployment() -> str:
    with open(DATA, encoding="utf-8") as f:
        text = f.read().replace("one-7", "one-8").replace("5907", "5908").replace(
            "datastores/0/7", "datastores/0/8")
    start, end = text.index("\t\t<interface"), text.index("</interface>\n") + 13
    return text[:start] + _disk(f"{DISK_DIR}/disk.0") + text[end:]


def action_xml(shared: str = "YES", vm: str = VM_XML) -> str:
    """oned's <VMM_DRIVER_ACTION_DATA> for MIGRATE (src/vmm/VirtualMachineManager.cc)."""
    return (f"<VMM_DRIVER_ACTION_DATA><HOST>one-0</HOST><MIGR_HOST>one-1</MIGR_HOST>"
            f"<DEPLOY_ID/><DISK_TARGET_PATH>{VM_DIR}</DISK_TARGET_PATH>{vm}"
            f"<DATASTORE><ID>0</ID><BASE_PATH>/var/lib/one//datastores/0</BASE_PATH>"
            f"<TEMPLATE><SHARED>{shared}</SHARED></TEMPLATE></DATASTORE>"
            f"</VMM_DRIVER_ACTION_DATA>")


def test_the_destination_uri_flags_and_parameters_are_the_stock_drivers() -> None:
    from onemetal import config
    from onemetal.vmm import migrate

    assert migrate.peer_uri("one-1") == "qemu+ssh://one-1/system"
    assert migrate.params("<domain/>", "one-1") == {"destination_xml": "<domain/>",
                                                     "migrate_uri": "tcp://one-1"}
    cfg = config.Config()
    assert migrate.flags(cfg) == 1  # VIR_MIGRATE_LIVE only, as `virsh migrate --live`
    unsafe = config.Config(vmm=config.VmmConfig(migrate_unsafe=True))
    assert migrate.flags(unsafe) == 1 | 512  # | VIR_MIGRATE_UNSAFE
    with pytest.raises(InputError, match="not a host name"):
        migrate.parse_args(["one-7", "fe80::1", "one-0", "7", "one-0"])


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Lab, dict[str, libvirt.Libvirt]]]:
    with installed_lab(2, mesh=HOSTS) as lab:
        share_datastores(lab, os.path.join(lab.workdir, "shared-datastores"))
        make_frontend(lab, "one-0")  # oneadmin's key, as on oned's hosts
        make_frontend(lab, "one-1")
        daemons = {}
        try:
            for name in HOSTS:
                lab.host(name).write_conf(CONF)
                daemons[name] = libvirt.start(lab.host(name), lab.record)  # type: ignore[arg-type]
            oneadmin = lab.ssh("one-0")
            oneadmin.run(["sh", "-c", f"mkdir -p {VM_DIR} && cat > {VM_DIR}/vm.xml"], input=VM_XML)
            deployed = oneadmin.run([f"{VMM}/deploy", DFILE, "one-0", "7", "one-0"],
                                    input=_deployment())
            oneadmin.run(["mkdir", "-p", DISK_DIR])
            oneadmin.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{DISK_DIR}/disk.0", "16M"])
            oneadmin.run([f"{VMM}/deploy", f"{DISK_DIR}/deployment.0", "one-0", "8", "one-0"],
                         input=_disk_deployment())
            print(f"\ndeployed one-7 on one-0: {deployed.stdout.strip()}")
            yield lab, daemons
        finally:
            for d in daemons.values():
                d.stop()


def _run(lab: Lab, on: str, action: str, *args: str, input: str | None = None) -> Result:
    return lab.ssh(on).run([f"{VMM}/{action}", *args], input=action_xml() if input is None
                           else input, check=False, timeout=120)


def _names(d: libvirt.Libvirt) -> list[str]:
    return sorted(d.virsh("list", "--name").split())


def _check_runs_on(lab: Lab, daemons: dict[str, libvirt.Libvirt], there: str, uuid: str) -> None:
    gone = next(n for n in HOSTS if n != there)
    assert daemons[there].virsh("domstate", "one-7").strip() == "running"
    assert daemons[there].virsh("domuuid", "one-7").strip() == uuid
    assert "one-7" not in _names(daemons[gone])
    live = etree.fromstring(daemons[there].virsh("dumpxml", "one-7").encode())
    [iface] = live.iterfind("devices/interface")
    assert iface.find("mtu").get("size") == "1450"
    [graphics] = live.iterfind("devices/graphics")
    assert graphics.get("listen") == "127.0.0.1"
    assert lab.host(there).vsctl("port-to-br", "one-7-0") == "br-mesh"
    assert "one-7-0" not in lab.host(gone).vsctl("list-ports", "br-mesh").split()


@pytest.mark.parametrize("args, stdin, field", [
    (["one-7'", "one-1", "one-0", "7", "one-0"], None, "deploy id"),
    (["one-7", "-oProxyCommand=x", "one-0", "7", "one-0"], None, "dest host"),
    (["one-7", "one-0", "one-0", "7", "one-0"], None, "dest host"),
    (["one-7", "one-1"], None, "argv"),
    (["one-7", "one-1", "one-0", "7", "one-0"], "<VMM_DRIVER_ACTION_DATA/>",
     "VMM_DRIVER_ACTION_DATA/VM"),
    (["one-7", "one-1", "one-0", "7", "one-0"], action_xml(vm="<VM><ID>x</ID></VM>"), "VM"),
])
def test_bad_input_fails_naming_the_field_and_the_domain_stays(pair, args, stdin, field) -> None:
    lab, daemons = pair
    result = _run(lab, "one-0", "migrate", *args, input=stdin)
    assert result.returncode != 0 and field in result.stderr, result.stderr
    assert _names(daemons["one-0"]) == ["one-7", "one-8"] and _names(daemons["one-1"]) == []


def test_each_libvirtd_has_its_own_hostname_and_host_uuid(pair) -> None:
    _, daemons = pair
    names = [daemons[n].virsh("hostname").strip() for n in HOSTS]
    uuids = [etree.fromstring(daemons[n].virsh("capabilities").encode()).findtext("host/uuid")
             for n in HOSTS]
    assert names == HOSTS
    assert uuids == [libvirt.host_uuid(daemons[n].host) for n in HOSTS] and uuids[0] != uuids[1]


def test_a_hung_destination_fails_within_the_timeout_naming_it(pair) -> None:
    lab, daemons = pair
    lab.host("one-0").write_conf(CONF + "[vmm]\ncall_timeout = 3.0\n")
    hung = daemons["one-1"].pids[-1]
    os.kill(hung, signal.SIGSTOP)  # ssh and virt-ssh-helper connect; libvirtd never answers
    try:
        begin = time.monotonic()
        result = _run(lab, "one-0", "migrate", "one-7", "one-1", "one-0", "7", "one-0")
        took = time.monotonic() - begin
    finally:
        os.kill(hung, signal.SIGCONT)
        lab.host("one-0").write_conf(CONF)
    print(f"\nhung destination: failed after {took:.2f} s (call_timeout 3 s)")
    assert result.returncode != 0
    assert ("one-7: connect to qemu+ssh://one-1/system: libvirtd did not answer within 3 s"
            in result.stderr), result.stderr
    assert _names(daemons["one-0"]) == ["one-7", "one-8"] and _names(daemons["one-1"]) == []


def test_migrate_moves_the_running_domain_to_the_destination(pair) -> None:
    lab, daemons = pair
    uuid = daemons["one-0"].virsh("domuuid", "one-7").strip()
    begin = time.monotonic()
    result = _run(lab, "one-0", "migrate", uuid, "one-1", "one-0", "7", "one-0")
    print(f"\nmigrate one-0 -> one-1 over SSH: {time.monotonic() - begin:.2f} s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    _check_runs_on(lab, daemons, "one-1", uuid)


def test_migrate_local_brings_it_back_from_the_frontend(pair) -> None:
    lab, daemons = pair
    uuid = daemons["one-1"].virsh("domuuid", "one-7").strip()
    begin = time.monotonic()
    # one-0's oneadmin stands in for the frontend: it reaches both hosts over qemu+ssh
    result = _run(lab, "one-0", "migrate_local", "one-7", "one-0", "one-1", "7", "one-1")
    print(f"\nmigrate_local one-1 -> one-0: {time.monotonic() - begin:.2f} s")
    assert result.returncode == 0, result.stderr
    _check_runs_on(lab, daemons, "one-0", uuid)


def _migrate_disk_vm(lab: Lab, shared: str = "YES", conf: str = "") -> Result:
    lab.host("one-0").write_conf(CONF + conf)
    try:
        return _run(lab, "one-0", "migrate", "one-8", "one-1", "one-0", "8", "one-0",
                    input=action_xml(shared, DISK_VM))
    finally:
        lab.host("one-0").write_conf(CONF)


def test_a_vm_with_disks_needs_a_shared_datastore_and_one_libvirt_counts_as_shared(pair) -> None:
    lab, daemons = pair
    # an internal snapshot as oned's SNAPSHOTCREATE makes it: libvirt refuses to migrate a
    # domain with snapshots, so migrate drops their metadata first and redefines them after
    made = _run(lab, "one-0", "snapshot_create", "one-8", "0", "8", "one-0", input="")
    assert made.stdout.strip() == "snap-0", made.stderr
    result = _migrate_disk_vm(lab, shared="NO")
    assert result.returncode != 0 and "stdin: DATASTORE/TEMPLATE/SHARED" in result.stderr
    # the lab's share is a bind mount: a local file system to libvirt, which refuses
    result = _migrate_disk_vm(lab)
    assert result.returncode != 0
    assert "one-8: migrate to one-1: Unsafe migration" in result.stderr, result.stderr
    assert "one-8" in _names(daemons["one-0"]) and "one-8" not in _names(daemons["one-1"])
    # redefined on the source after the failure
    assert daemons["one-0"].virsh("snapshot-current", "--name", "one-8").strip() == "snap-0"


def test_migrate_unsafe_moves_a_vm_on_the_share_with_its_snapshot(pair) -> None:
    lab, daemons = pair
    uuid = daemons["one-0"].virsh("domuuid", "one-8").strip()
    result = _migrate_disk_vm(lab, conf="[vmm]\nmigrate_unsafe = true\n")
    assert result.returncode == 0, result.stderr
    assert daemons["one-1"].virsh("snapshot-list", "--name", "one-8").split() == ["snap-0"]
    assert daemons["one-1"].virsh("snapshot-current", "--name", "one-8").strip() == "snap-0"
    assert daemons["one-1"].virsh("domuuid", "one-8").strip() == uuid
    assert "one-8" not in _names(daemons["one-0"])
    live = etree.fromstring(daemons["one-1"].virsh("dumpxml", "one-8").encode())
    assert live.find("devices/disk/source").get("file") == f"{DISK_DIR}/disk.0"


def test_a_migration_past_the_migrate_timeout_is_aborted_and_the_guest_stays(pair) -> None:
    lab, daemons = pair
    lab.host("one-0").write_conf(CONF + "[vmm]\nmigrate_timeout = 0.3\n")
    try:
        result = _run(lab, "one-0", "migrate", "one-7", "one-1", "one-0", "7", "one-0")
    finally:
        lab.host("one-0").write_conf(CONF)
    print(f"\n{result.stderr}")
    assert result.returncode != 0
    assert "one-7: migrate to one-1: not done within 0.3 s" in result.stderr, result.stderr
    assert daemons["one-0"].virsh("domstate", "one-7").strip() == "running"
    assert "one-7" not in _names(daemons["one-1"])
