"""The transfer driver's arguments: host:path words as oned writes them, and what is refused."""

from __future__ import annotations

import pytest

from onemetal.config import StorageConfig
from onemetal.errors import InputError
from onemetal.storage import tm_args

CFG = StorageConfig(datastores_dir="/var/lib/one/datastores")


def test_a_clone_destination_as_oned_writes_it():
    target = tm_args.disk_file("one-1:/var/lib/one//datastores/0/42/disk.0", CFG, "DST", 42)
    assert (target.host, target.path, target.vm_dir, target.ds_id, target.vm_id) == (
        "one-1", "/var/lib/one/datastores/0/42/disk.0", "/var/lib/one/datastores/0/42", 0, 42)
    assert tm_args.disk_id(target) == 0


def test_a_vm_directory_and_an_image():
    assert tm_args.vm_file("10.0.0.5:/var/lib/one/datastores/100/7", CFG, "DST", 7).path == \
        "/var/lib/one/datastores/100/7"
    assert tm_args.datastore_path("fe:/var/lib/one//datastores/1/abc", CFG, "SRC") == (
        "fe", "/var/lib/one/datastores/1/abc")


@pytest.mark.parametrize("word, why", [
    ("one-1:/var/lib/one/datastores/0/42/../../1/abc", "'..'"),
    ("one-1:/etc/passwd", "outside"),
    ("one-1:var/lib/one/datastores/0/42/disk.0", "not an absolute path"),
    ("one-1:/var/lib/one/datastores/0/42/disk.0\n", "NUL or newline"),
    ("-oProxyCommand=x:/var/lib/one/datastores/0/42/disk.0", "not a host name"),
    ("/var/lib/one/datastores/0/42/disk.0", "not host:path"),
    ("one 1:/var/lib/one/datastores/0/42/disk.0", "not a host name"),
    ("one-1:/var/lib/one/datastores/0/43/disk.0", "not in the directory of VM 42"),
    ("one-1:/var/lib/one/datastores/0/42/deployment.0", "not a disk.<id>"),
    ("one-1:/var/lib/one/datastores/0/42", "not a disk.<id>"),
    ("one-1:/var/lib/one/datastores/0/42/x/disk.0", "<ds id>/<vm id>"),
    ("one-1:/var/lib/one/datastores/0", "<ds id>/<vm id>"),
    ("one-1:/var/lib/one/datastores/system/42/disk.0", "<ds id>/<vm id>"),
])
def test_hostile_destinations_are_refused_naming_the_field(word, why):
    with pytest.raises(InputError) as err:
        tm_args.disk_file(word, CFG, "DST", 42)
    assert err.value.field == "DST" and why in str(err.value)


@pytest.mark.parametrize("word", ["-1", "4x", "", "١٢", "1" * 10])
def test_ids_are_plain_numbers(word):
    with pytest.raises(InputError, match="VMID"):
        tm_args.number(word, "VMID")


def test_the_argument_count_is_checked():
    with pytest.raises(InputError, match="tm-clone: takes 4 arguments"):
        tm_args.expect(["a", "b"], ("SRC", "DST", "VMID", "DSID"), "tm-clone")
