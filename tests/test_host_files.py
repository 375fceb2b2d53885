"""Files a host action needs, as oneadmin: a config it cannot read, a state directory it cannot
create, and a NAT store made by root first each give one line naming the path and the fix."""

from __future__ import annotations

import os

from onemetal.lab import drive, samples
from onemetal.lab.host import ONEADMIN_ID
from onemetal.lab.lab import HOST_CONF
from onemetal.lab.oned import error_message_6_0

VM_XML = samples.vnm_vm_xml(31, "one-0", [samples.SampleNic(0, "192.168.0.31", "02:00:c0:a8:00:1f")])
CORE = "/var/tmp/one/onemetal/lib"


def test_an_unreadable_config_names_the_path_and_the_fix(lab3):
    host = lab3.host("one-0")
    conf = host.path("/etc/one/onemetal.conf")
    os.chmod(conf, 0o600)  # root's only, as a careless `cp` leaves it
    try:
        result = drive.vnm(lab3, "one-0", "pre", [], VM_XML)
    finally:
        os.chmod(conf, 0o640)
    assert result.code != 0
    assert error_message_6_0(result.stderr) == (
        "/etc/one/onemetal.conf: cannot be read by this user (uid 9869): as root, run "
        "`chgrp oneadmin /etc/one/onemetal.conf && chmod 0640 /etc/one/onemetal.conf`")
    assert "Traceback" not in result.stderr


def test_a_state_directory_oneadmin_cannot_create_is_refused_before_any_change(lab3):
    host = lab3.host("one-1")
    host.write_conf(HOST_CONF + '[core]\nstate_dir = "/var/lib/onemetal-missing"\n')
    try:
        result = drive.vnm(lab3, "one-1", "pre", [], VM_XML)
    finally:
        host.write_conf(HOST_CONF)
    assert result.code != 0
    assert error_message_6_0(result.stderr) == (
        "core.state_dir: cannot create /var/lib/onemetal-missing (permission denied): as root, run "
        "`install -d -m 0700 -o oneadmin -g oneadmin /var/lib/onemetal-missing`")
    assert "br-mesh" not in host.vsctl("list-br").split()  # nothing was created


def test_a_nat_store_root_creates_first_is_oneadmins(lab3):
    host = lab3.host("one-2")
    store = "/var/lib/one/onemetal/nat.db"
    opened = ["/usr/bin/python3", "-I", "-c",
              f"import sys; sys.path.insert(0, {CORE!r}); from onemetal.nat.store import Store; "
              f"print(Store({store!r}).version)"]
    assert host.run(opened).stdout.strip() != ""                      # as root, first
    for path, mode in ((os.path.dirname(store), 0o700), (store, 0o600)):
        info = os.stat(host.path(path))
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (ONEADMIN_ID, ONEADMIN_ID, mode)
    assert lab3.ssh("one-2").run(opened).stdout.strip() != ""         # then as oneadmin


def test_an_unusable_nat_store_is_one_line_naming_it(lab3):
    host = lab3.host("one-2")
    store = "/var/lib/one/bad.db"
    with open(host.path(store), "w", encoding="ascii") as f:
        f.write("not a database\n" * 100)
    os.chown(host.path(store), ONEADMIN_ID, ONEADMIN_ID)
    opened = ["/usr/bin/python3", "-I", "-c",
              f"import sys; sys.path.insert(0, {CORE!r}); from onemetal.nat.store import Store\n"
              f"try:\n    Store({store!r})\nexcept Exception as exc:\n    print(exc)"]
    line = lab3.ssh("one-2").run(opened).stdout.strip()
    assert line.startswith(f"{store}: cannot open the NAT store (file is not a database)")
    assert "oneadmin can read and write" in line
