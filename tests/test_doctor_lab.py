"""`onemetal doctor` against a small lab built like the reference deployment: two meshed hosts
(one-0 also the NAT gateway), the API stand-in's host pool, a VM port, libvirtd on each host, the
datastores on a real NFS share (ganesha on one-1); all OK, then each injected fault detected and
named with its remedy, then OK again after that remedy."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Iterator

import pytest

from conftest import installed_lab
from onemetal.doctor_report import Check
from onemetal.lab import drive, frontend, libvirt, nfs, tools
from onemetal.lab.host import ONEADMIN_ID
from onemetal.lab.samples import SampleNic, host_pool_xml
from onemetal.net.bridge import tunnel_name
from tm_lab import DS, conf

HOSTS = ["one-0", "one-1"]
ALLOWED_WARN = {"kvm"}  # the lab's guests run under TCG: no /dev/kvm is a WARN by design
SETTLE = 30.0           # seconds a healthy lab may take for BFD to see every tunnel up


class Doctor:
    def __init__(self, lab, fe, remotes):  # type: ignore[no-untyped-def]
        self.lab, self.fe, self.remotes = lab, fe, remotes

    def run(self, *extra: str) -> tuple[int, dict[str, Check]]:
        argv = [sys.executable, "-m", "onemetal.cli.onemetal", "doctor", "-j",
                "--remotes", self.remotes, *extra]
        out = self.lab.frontend_cli(self.fe.env).run(argv, check=False)
        return out.returncode, {c["name"]: Check(**c) for c in json.loads(out.stdout)}

    def text(self) -> tuple[int, str]:
        argv = [sys.executable, "-m", "onemetal.cli.onemetal", "doctor", "--remotes", self.remotes]
        out = self.lab.frontend_cli(self.fe.env).run(argv, check=False)
        return out.returncode, out.stdout

    def healthy(self) -> dict[str, Check]:
        """The report once every check is OK (BFD may need a few seconds after a change)."""
        deadline = time.monotonic() + SETTLE
        while True:
            code, checks = self.run()
            bad = {n: c for n, c in checks.items()
                   if c.status != "OK" and n.split(": ")[-1] not in ALLOWED_WARN}
            if not bad and code == 0:
                return checks
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy within {SETTLE:g} s: {bad}")
            time.sleep(1.0)


@pytest.fixture(scope="module")
def doctor(tmp_path_factory) -> Iterator[Doctor]:
    api_dir = tmp_path_factory.mktemp("api")
    with installed_lab(2, mesh=HOSTS) as lab:
        lab.add_uplink("one-0", "ens5", "10.0.0.41/24", "10.0.0.100/24")
        fe = frontend.start(lab, str(api_dir), nat_gateway="one-0", nat_interface="ens5")
        (api_dir / "host_pool.xml").write_text(host_pool_xml(
            [(i, h, lab.host(h).address) for i, h in enumerate(HOSTS)]))
        server = nfs.start_server(lab.host("one-1"), lab.record, owner=ONEADMIN_ID)  # type: ignore[arg-type]
        os.makedirs(os.path.join(server.export_dir, "100"))
        os.chown(os.path.join(server.export_dir, "100"), ONEADMIN_ID, ONEADMIN_ID)
        daemons = []
        for name in HOSTS:
            host = lab.host(name)
            nfs.install_client(host)
            # datastore 100 mounted on its own directory, as `mount ensure 100` does on a host
            os.makedirs(host.path(f"{DS}/100"))
            os.chown(host.path(f"{DS}/100"), ONEADMIN_ID, ONEADMIN_ID)
            host.write_conf(conf("lab") + f'source = "{server.source}/100"\nprobe_timeout = 3.0\n')
            mounted = lab.ssh(name).run_entry("mount-ensure", ["100"], check=False)
            assert mounted.returncode == 0, mounted.stderr
            daemons.append(libvirt.start(host, lab.record))  # type: ignore[arg-type]
        drive.deploy(lab, "one-1", 5, [SampleNic(0, "192.168.0.5", "02:00:c0:a8:00:05",
                                                 vlan_id=100, mtu=None)])
        fe.onenat("vnet", "add", "0", "--subnet", "192.168.0.0/24", "--gateway", "192.168.0.1",
                  "--snat", "10.0.0.41", "--vni", "100")
        remotes = os.path.join(lab.workdir, "frontend", "var", "lib", "one", "remotes")
        yield Doctor(lab, fe, remotes)
        for d in daemons:
            d.stop()
        for name in HOSTS:
            nfs.stop_clients(lab.host(name))
        server.stop()


def test_a_healthy_lab_is_all_ok_with_every_section(doctor):
    checks = doctor.healthy()
    for name in ("frontend remotes", "host pool", "nat table", "one-0: remotes in sync",
                 "one-1: host packages", "one-0: sudoers", "one-0: mesh peers",
                 "one-0: tunnel to one-1", "one-1: tunnel to one-0", "one-1: overlay mtu",
                 "one-1: port one-5-0 mtu", "one-0: ds 100 mount", "one-1: libvirt socket",
                 "one-1: libvirt group", "one-1: qemu"):
        assert checks[name].status == "OK", checks[name]
    assert checks["one-1: port one-5-0 mtu"].detail == "mtu 1450"
    started = time.monotonic()
    doctor.run()
    print(f"\nonemetal doctor, frontend and 2 hosts: {time.monotonic() - started:.2f} s, "
          f"{len(checks)} checks")
    code, only = doctor.run("--host", "one-1")
    assert code == 0 and not [n for n in only if n.startswith("one-0: ")] and "nat" not in only


def fault(doctor, name: str, remedy: str, also: tuple[str, ...] = ()) -> Check:  # type: ignore[no-untyped-def]
    """The one FAIL the fault causes (plus `also`, its echoes elsewhere), with its remedy."""
    code, checks = doctor.run()
    assert code == 1, checks
    failed = {n: c for n, c in checks.items() if c.status == "FAIL"}
    assert sorted(failed) == sorted([name, *also]), failed
    assert remedy in failed[name].remedy, failed[name]
    return failed[name]


def test_a_deleted_tunnel_port_is_named_and_mesh_sync_brings_it_back(doctor):
    doctor.healthy()
    lab = doctor.lab
    lab.host("one-0").vsctl("del-port", "br-mesh", tunnel_name(lab.host("one-1").address))
    # one-1's end of it sees BFD go down: reported as well, pointing at the same remedy
    check = fault(doctor, "one-0: tunnel to one-1", "onemetal mesh sync", also=("one-1: tunnel to one-0",))
    assert check.detail.startswith(f"{lab.host('one-1').address}: missing")
    assert check.remedy == "run `onemetal mesh sync` on the frontend"
    drive.mesh(lab, "sync", HOSTS)
    doctor.healthy()


def test_a_flushed_nat_table_is_named_and_onenat_sync_restores_it(doctor):
    doctor.healthy()
    doctor.lab.host("one-0").run(["nft", "flush", "table", "ip", "onemetal"])
    check = fault(doctor, "nat table", "onenat sync")
    assert "differences from the store" in check.detail
    code, text = doctor.text()
    assert code == 1 and f"FAIL  nat table: {check.detail}\n      remedy: onenat sync\n" in text
    doctor.fe.onenat("sync")
    doctor.healthy()


def test_an_unmounted_datastore_is_named_and_mount_ensure_mounts_it(doctor):
    doctor.healthy()
    assert nfs.stop_clients(doctor.lab.host("one-0")) == []
    code, checks = doctor.run()
    assert code == 1
    check = checks["one-0: ds 100 mount"]
    assert check.status == "FAIL" and check.detail.startswith("mounted: no")
    assert check.remedy == "run `onemetal mount ensure 100`"
    doctor.lab.ssh("one-0").run_entry("mount-ensure", ["100"])
    doctor.healthy()


def test_a_missing_tool_on_one_host_is_named_with_its_package(doctor):
    doctor.healthy()
    host = doctor.lab.host("one-1")
    tools.hide(host, "ethtool")
    try:
        check = fault(doctor, "one-1: package ethtool", "apt-get install ethtool")
    finally:
        tools.unhide(host, "ethtool")
    assert check.detail == "tool ethtool not found"
    doctor.healthy()


def test_a_changed_remote_file_is_named_and_sync_restores_it(doctor):
    doctor.healthy()
    lab = doctor.lab
    changed = lab.host("one-1").path("/var/tmp/one/onemetal/lib/onemetal/deps.py")
    with open(changed, "a", encoding="utf-8") as f:
        f.write("# changed by hand\n")
    check = fault(doctor, "one-1: remotes in sync", "onehost sync --force")
    assert "1 differ (onemetal/lib/onemetal/deps.py)" in check.detail
    lab.sync_remotes(doctor.remotes)
    doctor.healthy()


def test_a_missing_sudoers_fragment_is_named_with_the_file(doctor):
    doctor.healthy()
    fragment = os.path.join(doctor.lab.host("one-1").sudoers_dir, "onemetal")
    os.rename(fragment, fragment + ".away")
    try:
        check = fault(doctor, "one-1: sudoers", "/etc/sudoers.d/onemetal")
    finally:
        os.rename(fragment + ".away", fragment)
    assert check.detail == "sudo -n -l lists none of /etc/sudoers.d/onemetal's rules"
    doctor.healthy()
