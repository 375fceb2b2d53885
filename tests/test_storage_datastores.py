"""Datastore paths, per-datastore policies from onemetal.conf, and the gate against mountinfo."""

from __future__ import annotations

import pytest

from onemetal import config
from onemetal.errors import ConfigError, InputError
from onemetal.storage.datastores import datastore_id, gate, inside, policy_for
from onemetal.storage.mounts import parse
from onemetal.storage.policy import WriteGateError

ROOT = "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw"
NFS = ("47 22 0:44 / /var/lib/one/datastores rw,relatime - nfs4 10.0.0.5:/one "
       "rw,vers=4.2,hard,proto=tcp,timeo=600,retrans=2,addr=10.0.0.5")


def storage(text: str) -> config.StorageConfig:
    return config.parse("[storage]\n" + text).storage


@pytest.mark.parametrize("raw, why", [
    ("relative/x", "not an absolute path"),
    ("/var/lib/one/datastores/1/../../../etc/passwd", "'..'"),
    ("/var/lib/one/datastores/1/a\nb", "newline"),
    ("/etc/passwd", "outside /var/lib/one/datastores"),
    ("/var/lib/one/datastores100/x", "outside"),
])
def test_paths_that_could_leave_the_datastore_are_refused_naming_the_field(raw, why):
    with pytest.raises(InputError, match=why) as err:
        inside(raw, "/var/lib/one/datastores", "IMAGE/SOURCE")
    assert err.value.field == "IMAGE/SOURCE"


def test_a_path_names_its_datastore():
    cfg = storage("")
    assert datastore_id("/var/lib/one//datastores/100/7/disk.0", cfg) == 100
    assert datastore_id("/var/lib/one/datastores", cfg) is None
    assert datastore_id("/var/tmp/x", cfg) is None


def test_per_datastore_profiles_and_nfs_options_come_from_the_config():
    cfg = storage('profile = "nfs"\nnfs_options = ["hard", "vers=4.1"]\n'
                  'datastore_profiles = ["101=none"]\nsource = "10.0.0.5:/one"')
    assert policy_for(101, cfg).name == "none"
    nfs = policy_for(100, cfg)
    assert (nfs.name, nfs.options, nfs.source) == ("nfs", (("hard", None), ("vers", "4.1")),
                                                   "10.0.0.5:/one")


@pytest.mark.parametrize("text, field", [
    ('datastore_profiles = ["x=none"]', "storage.datastore_profiles"),
    ('nfs_options = ["vers="]\nprofile = "nfs"', "storage.nfs_options"),
    ('profile = "zfs"', "profile"),
])
def test_bad_storage_settings_name_their_key(text, field):
    with pytest.raises(ConfigError) as err:
        policy_for(100, storage(text))
    assert err.value.field == field


def test_the_gate_opens_on_the_policy_share_and_names_each_failed_condition_otherwise():
    mounts = parse("\n".join([ROOT, NFS]))
    cfg = storage('profile = "nfs"\nnfs_options = ["hard", "vers=4.1"]\n'
                  'datastore_profiles = ["101=none"]')
    assert gate("/var/lib/one/datastores/101/x", cfg, parse(ROOT)).fstype == "ext4"  # "none"
    with pytest.raises(WriteGateError, match="option vers=4.2, want vers=4.1") as err:
        gate("/var/lib/one/datastores/100/x", cfg, mounts)
    assert err.value.field == "/var/lib/one/datastores/100/x"
    with pytest.raises(WriteGateError, match=r"is on / \(ext4"):
        gate("/var/lib/one/datastores/100/x", cfg, parse(ROOT))
    assert gate("/var/lib/one/datastores/100/x", storage('profile = "nfs"'), mounts).fstype == "nfs4"
