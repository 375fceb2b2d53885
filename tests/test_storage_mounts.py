"""The mount policy against mountinfo lines as real NFS 4.1, EFS and efs-utils TLS mounts list them."""

from __future__ import annotations

import pytest

from onemetal.storage.mounts import covering, parse, parse_line
from onemetal.storage.policy import WriteGateError, problems, profile, write_gate

ROOT = "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw,discard,errors=remount-ro"
EFS = ("47 22 0:44 / /var/lib/one/datastores rw,relatime shared:25 - nfs4 "
       "fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/ rw,vers=4.1,rsize=1048576,"
       "wsize=1048576,namlen=255,hard,noresvport,proto=tcp,timeo=600,retrans=2,sec=sys,"
       "clientaddr=10.0.0.12,local_lock=none,addr=10.0.0.200")
EFS_TLS = ("52 22 0:50 / /var/lib/one/datastores rw,relatime shared:27 - nfs4 127.0.0.1:/ "
           "rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,noresvport,proto=tcp,"
           "port=20263,timeo=600,retrans=2,sec=sys,clientaddr=127.0.0.1,local_lock=none,"
           "addr=127.0.0.1")
NFS_DEFAULTS = ("60 22 0:55 / /var/lib/one/datastores rw,relatime shared:30 - nfs4 "
                "10.0.0.5:/export/one rw,vers=4.2,rsize=524288,wsize=524288,namlen=255,soft,"
                "proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.12,local_lock=none,"
                "addr=10.0.0.5")
LAB = ("70 22 0:60 / /var/lib/one/datastores rw,nosuid,nodev,relatime shared:33 - fuse.nfs4 "
       "172.31.255.10:/export rw,user_id=0,group_id=0")
EFS_SOURCE = "fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/"
DS = "/var/lib/one/datastores/100/7/disk.0"


def test_escaped_characters_in_paths_are_decoded():
    mount = parse_line(r"80 22 0:61 /a\134b /mnt/my\040share\011x rw - nfs4 srv:/e\040x rw,hard")
    assert mount.mount_point == "/mnt/my share\tx"
    assert mount.source == "srv:/e x"


def test_the_deepest_mount_holds_a_path_and_the_top_of_a_stack_wins():
    tmpfs = "90 47 0:70 / /var/lib/one/datastores/100 rw - tmpfs tmpfs rw"
    mounts = parse("\n".join([ROOT, EFS, tmpfs]))
    assert covering(mounts, DS).fstype == "tmpfs"
    assert covering(mounts, "/var/lib/one/datastores/1000").fstype == "nfs4"  # not a prefix match
    assert covering(mounts, "/etc").fstype == "ext4"
    assert covering(parse("\n".join([ROOT, EFS, EFS_TLS])), DS).source == "127.0.0.1:/"


def test_efs_mounted_as_aws_recommends_opens_the_gate():
    mounts = parse("\n".join([ROOT, EFS]))
    assert write_gate(DS, profile("efs", source=EFS_SOURCE), mounts).source == EFS_SOURCE


def test_efs_through_the_tls_tunnel_is_accepted_only_when_the_policy_says_tls():
    mounts = parse("\n".join([ROOT, EFS_TLS]))
    assert problems(covering(mounts, DS), DS, profile("efs", source=EFS_SOURCE, tls=True)) == []
    assert problems(covering(mounts, DS), DS, profile("efs", source=EFS_SOURCE)) == [
        f"source 127.0.0.1:/, want {EFS_SOURCE}"]


def test_an_unmounted_datastore_is_refused_naming_the_path_and_what_it_is_on():
    with pytest.raises(WriteGateError) as caught:
        write_gate(DS, profile("efs", source=EFS_SOURCE), parse(ROOT))
    assert str(caught.value) == (
        f"{DS}: refusing to write (efs policy): {DS} is on / (ext4 from /dev/nvme0n1p1), "
        "not an NFS share (want nfs4)")


def test_each_missing_or_wrong_option_is_its_own_line():
    got = problems(covering(parse(NFS_DEFAULTS), DS), DS, profile("efs", source="10.0.0.5:/export/one"))
    assert got == ["option vers=4.2, want vers=4.1",
                   "option rsize=524288, want rsize=1048576",
                   "option wsize=524288, want wsize=1048576",
                   "option hard missing (mounted soft: I/O errors would reach the VMs)",
                   "option noresvport missing"]


@pytest.mark.parametrize("dropped", ["timeo=600", "retrans=2", "noresvport"])
def test_every_efs_option_is_required(dropped):
    line = EFS.replace(f",{dropped}", "")
    got = problems(covering(parse(line), DS), DS, profile("efs", source=EFS_SOURCE))
    assert got == [f"option {dropped} missing"]


def test_the_lab_mount_passes_only_the_lab_profile():
    mounts = parse("\n".join([ROOT, LAB]))
    assert problems(covering(mounts, DS), DS, profile("lab", source="172.31.255.10:/export")) == []
    assert problems(covering(mounts, DS), DS, profile("nfs"))[0].endswith(
        "not an NFS share (want nfs4 or nfs)")


def test_a_local_datastore_needs_no_mount():
    assert write_gate(DS, profile("none"), parse(ROOT)) is not None


def test_this_machines_own_mountinfo_parses():
    from onemetal.storage.mounts import read

    assert covering(read(), "/proc") is not None


def test_the_docstring_examples_hold():
    import doctest

    from onemetal.storage import mounts, policy, probe

    for module in (mounts, policy, probe):
        assert doctest.testmod(module).failed == 0, module.__name__
