"""The lab itself: hosts reachable over SSH, their own OVS and nftables, clean teardown."""

import os
import subprocess
import sys
import textwrap
import time

from onemetal.lab import Lab
from onemetal.lab import netns
from onemetal.lab.registry import alive
from onemetal.run import SshRunner, SshTarget

DRIVERS = os.path.join(os.path.dirname(__file__), "..", "drivers")


def test_every_host_answers_ssh_from_the_frontend_by_name(lab3):
    for host in lab3.hosts:
        result = lab3.ssh(host.name).run(["ip", "-4", "-o", "addr", "show", "br-phy"])
        assert f"{host.address}/24" in result.stdout


def test_hosts_run_their_own_userspace_ovs_and_nftables(lab3):
    for host in lab3.hosts:
        ssh = lab3.ssh(host.name)
        sudo = ["sudo", "-n"]
        assert ssh.run([*sudo, "ovs-vsctl", "get", "bridge", "br-phy", "datapath_type"]).stdout.strip() == "netdev"
        ssh.run([*sudo, "nft", "add", "table", "ip", "probe"])
        assert "table ip probe" in ssh.run([*sudo, "nft", "list", "tables"]).stdout
        ssh.run([*sudo, "nft", "delete", "table", "ip", "probe"])
    assert "probe" not in netns.ROOT.run(["nft", "list", "tables"]).stdout


def test_remotes_log_in_as_oneadmin_and_never_as_root(lab3):
    ssh = lab3.ssh("one-0")
    assert ssh.run(["id", "-u", "-n"]).stdout.strip() == "oneadmin"
    assert ssh.run(["id", "-u"]).stdout.strip() == "9869"
    as_root = SshRunner(lab3.ssh_target("one-0", user="root"), local=lab3.frontend)
    assert as_root.run(["true"], check=False).returncode == 255


def test_oneadmin_has_opennebulas_node_rules_and_onemetals_fragment_only(lab3):
    ssh = lab3.ssh("one-1")
    assert ssh.run(["sudo", "-n", "ovs-vsctl", "--version"]).returncode == 0       # ONE_OVS
    assert ssh.run(["sudo", "-n", "ip", "link", "show", "lo"]).returncode == 0     # ONE_NET
    refused = ssh.run(["sudo", "-n", "ip", "address", "flush", "dev", "eth0"], check=False)
    assert refused.returncode == 1 and "a password is required" in refused.stderr
    assert ssh.run(["sudo", "-n", "conntrack", "-D", "-d", "10.0.0.41"], check=False).stderr \
        .strip() != "sudo: a password is required"                                 # onemetal's fragment
    assert ssh.run(["sudo", "-n", "conntrack", "-F"], check=False).stderr.strip() == \
        "sudo: a password is required"
    assert ssh.run(["stat", "-c", "%a %U", "/var/lib/onemetal"]).stdout.strip() == "700 oneadmin"
    assert ssh.run(["stat", "-c", "%a %U %G", "/etc/one/onemetal.conf"]).stdout.strip() == \
        "640 root oneadmin"


def test_hosts_have_private_run_and_state_directories(lab3):
    first, second = lab3.hosts[0], lab3.hosts[1]
    lab3.ssh(first.name).run(["touch", "/var/lib/onemetal/marker"])
    assert lab3.ssh(second.name).run(["ls", "/var/lib/onemetal"]).stdout.strip() == ""
    assert not os.path.exists("/var/lib/onemetal/marker")
    lab3.ssh(first.name).run(["rm", "/var/lib/onemetal/marker"])


def test_unknown_host_keys_are_refused(lab3):
    ssh = lab3.ssh(lab3.hosts[0].address)  # known_hosts lists it; now use an empty file
    empty = os.path.join(lab3.workdir, "empty_known_hosts")
    open(empty, "w").close()
    strict = SshRunner(SshTarget(host=lab3.hosts[0].name, key=lab3.key,
                                 known_hosts=empty), local=lab3.frontend)
    assert ssh.run(["true"]).returncode == 0
    assert strict.run(["true"], check=False).returncode == 255


def test_vms_on_one_bridge_reach_each_other_with_their_mtu(lab3):
    host = lab3.hosts[2]
    host.vsctl("--may-exist", "add-br", "onebr9", "--", "set", "bridge", "onebr9", "datapath_type=netdev")
    a = lab3.add_vm(host.name, "a", "onebr9", "192.168.9.2/24", mtu=1450)
    b = lab3.add_vm(host.name, "b", "onebr9", "192.168.9.3/24", mtu=1450)
    assert a.ping(b.ip, count=2)
    assert a.ping(b.ip, size=1422, dont_fragment=True)       # 1450-byte IP packet
    assert not a.ping(b.ip, size=1423, dont_fragment=True)   # refused by the VM itself


def test_teardown_leaves_no_namespace_and_no_process():
    with Lab(hosts=2) as lab:
        names = list(lab.record.namespaces)
        pids = list(lab.record.pids)
        workdir = lab.workdir
        lab.ssh("one-1").run(["true"])
    assert pids and names
    assert not [p for p in pids if alive(p)]
    assert not [n for n in names if netns.exists(n)]
    assert not os.path.exists(workdir)
    assert {"start", "teardown"} <= set(lab.timings)


def test_a_lab_whose_owner_was_killed_is_swept_by_the_next():
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {DRIVERS!r})
        from onemetal.lab import Lab
        lab = Lab(hosts=1); lab.start()
        print(" ".join(lab.record.namespaces), "|", " ".join(map(str, lab.record.pids)), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    proc.kill()
    proc.wait(10)
    names, pids = line.split("|")
    names, pids = names.split(), [int(p) for p in pids.split()]
    assert names and all(netns.exists(n) for n in names)
    with Lab(hosts=1):
        pass  # starting a lab sweeps stale ones
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert not [n for n in names if netns.exists(n)]
    assert not [p for p in pids if alive(p)]
