"""One lab host: namespaces, Open vSwitch (userspace datapath), nftables, sshd, sudo.

The host's daemons run in a private mount namespace with their own /run,
/var/tmp, /var/lib/one, /var/lib/onemetal and /etc/one, so everything on the host
(the drivers run over SSH included) uses production's default paths:
/run/openvswitch/db.sock, /var/tmp/one, /var/lib/onemetal.

Like a stock OpenNebula KVM node, sshd lets in only the unprivileged `oneadmin`
(added to copies of passwd, group and shadow mounted over the host's own), and
sudo grants it OpenNebula's node rules plus the fragment onemetal ships, nothing
else. The lab's own plumbing (daemons, addresses, checks) runs as root through
nsenter, never over SSH.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from onemetal.lab import netns
from onemetal.lab.registry import Record, alive
from onemetal.run import Result, Runner

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# What OpenNebula's packages give oneadmin: uid/gid 9869, home /var/lib/one.
ONEADMIN = "oneadmin"
ONEADMIN_ID = 9869
ONEADMIN_HOME = "/var/lib/one"
# The lab's copy of OpenNebula's node sudoers (opennebula-common, opennebula-node-kvm).
OPENNEBULA_SUDOERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sudoers")
# Debian's /etc/sudoers, without the sudo group: every rule oneadmin has comes from sudoers.d.
SUDOERS = """\
Defaults env_reset
Defaults mail_badpass
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
root ALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
"""
UNDERLAY_BRIDGE = "br-phy"
# Bounded: how long a daemon may take to write its pid file.
_START_TIMEOUT = 10.0

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {host_key}
PidFile /run/sshd.pid
AuthorizedKeysFile {authorized_keys}
AllowUsers oneadmin
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 200
MaxSessions 200
LogLevel ERROR
Subsystem sftp internal-sftp
"""


class LabError(RuntimeError):
    """The lab could not be built; the message names the step."""


def _wait_for_pid_file(path: str, what: str) -> int:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
            if text.isdigit() and alive(int(text)):
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise LabError(f"{what} did not start within {_START_TIMEOUT:g} s (no pid in {path})")


@dataclass
class LabHost:
    name: str
    netns: str
    address: str
    prefixlen: int
    workdir: str
    anchor_pid: int = 0

    @property
    def runner(self) -> Runner:
        """Commands inside the host: its network and mount namespaces."""
        return Runner(prefix=self.enter, timeout=30.0, where=self.name)

    @property
    def enter(self) -> tuple[str, ...]:
        """The prefix that runs a command inside the host, as root: nsenter through its anchor."""
        return ("nsenter", "-t", str(self.anchor_pid), "-m", "-n", "--")

    def run(self, argv: list[str], **kwargs: object) -> Result:
        return self.runner.run(argv, **kwargs)  # type: ignore[arg-type]

    def vsctl(self, *args: str) -> str:
        return self.run(["ovs-vsctl", "--timeout=10", *args]).stdout.strip()

    def port_mtu(self, port: str) -> int:
        """The MTU OVS gives a VM port (what the network driver enforced on it)."""
        return int(self.vsctl("get", "interface", port, "mtu"))

    def path(self, inside: str) -> str:
        """A path inside the host's mount namespace, as seen from the machine."""
        return f"/proc/{self.anchor_pid}/root{inside}"

    def _dir(self, *parts: str, mode: int = 0o755, owned: bool = False) -> str:
        path = os.path.join(self.workdir, *parts)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        if owned:
            os.chown(path, ONEADMIN_ID, ONEADMIN_ID)
        return path

    def _bind_file(self, source: str, target: str) -> None:
        self.run(["mount", "--bind", source, target])

    def _add_oneadmin(self) -> None:
        """oneadmin in copies of the machine's account files, mounted over them on this host only."""
        etc = self._dir("etc")
        entries = {"passwd": f"{ONEADMIN}:x:{ONEADMIN_ID}:{ONEADMIN_ID}:OpenNebula:"
                             f"{ONEADMIN_HOME}:/bin/bash",
                   "group": f"{ONEADMIN}:x:{ONEADMIN_ID}:",
                   # "*": no password, yet not locked (sshd refuses a locked account, key or not).
                   "shadow": f"{ONEADMIN}:*:20000:0:99999:7:::"}
        for name, entry in entries.items():
            copy = os.path.join(etc, name)
            shutil.copy2(f"/etc/{name}", copy)  # keeps shadow's mode and group
            with open(copy, encoding="utf-8") as f:
                lines = [line for line in f.read().splitlines()
                         if not line.startswith(f"{ONEADMIN}:")]
            with open(copy, "w", encoding="utf-8") as f:
                f.write("\n".join([*lines, entry]) + "\n")
            self._bind_file(copy, f"/etc/{name}")

    @property
    def sudoers_dir(self) -> str:
        """The host's /etc/sudoers.d, as seen from the machine (root may add or remove rules)."""
        return os.path.join(self.workdir, "sudoers.d")

    def _mount_sudoers(self) -> None:
        sudoers = os.path.join(self.workdir, "sudoers")
        with open(sudoers, "w", encoding="ascii") as f:
            f.write(SUDOERS)
        os.chmod(sudoers, 0o440)
        os.makedirs(self.sudoers_dir, mode=0o755)
        for name in sorted(os.listdir(OPENNEBULA_SUDOERS)):
            shutil.copyfile(os.path.join(OPENNEBULA_SUDOERS, name),
                            os.path.join(self.sudoers_dir, name))
            os.chmod(os.path.join(self.sudoers_dir, name), 0o440)
        self._bind_file(sudoers, "/etc/sudoers")
        self.run(["mount", "--bind", self.sudoers_dir, "/etc/sudoers.d"])

    def start_namespace(self, record: Record) -> None:
        # `ip netns exec` already gives the process a private mount namespace with the
        # host's own /sys; this process only anchors it for the daemons we enter it with.
        anchor = netns.in_netns(self.netns).spawn(["sleep", "86400"],
                                                  os.path.join(self.workdir, "anchor.log"))
        self.anchor_pid = anchor.pid
        record.add_pid(anchor.pid)
        deadline = time.monotonic() + _START_TIMEOUT
        while os.readlink(f"/proc/{anchor.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: mount namespace was not created")
            time.sleep(0.005)
        for mount_point in ("/var/lib/onemetal", "/etc/one", ONEADMIN_HOME):
            os.makedirs(mount_point, exist_ok=True)  # mount points; they stay empty here
        self.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"])
        # As on a host: /var/tmp is world-writable (oned copies the remotes to /var/tmp/one as
        # oneadmin), the state directory and the home are oneadmin's, onemetal.conf is
        # root's and readable by group oneadmin.
        self.run(["mount", "--bind", self._dir("var-tmp", mode=0o1777), "/var/tmp"])
        self.run(["mount", "--bind", self._dir("state", mode=0o700, owned=True), "/var/lib/onemetal"])
        self.run(["mount", "--bind", self._dir("home", mode=0o750, owned=True), ONEADMIN_HOME])
        self.run(["mount", "--bind", self._dir("etc-one"), "/etc/one"])
        for inside in ("/run/openvswitch", "/run/sshd"):
            os.makedirs(self.path(inside), mode=0o755, exist_ok=True)
        self._add_oneadmin()
        self._mount_sudoers()

    def write_conf(self, text: str) -> None:
        """The host's /etc/one/onemetal.conf, as the drivers run over SSH read it."""
        path = os.path.join(self._dir("etc-one"), "onemetal.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chown(path, 0, ONEADMIN_ID)
        os.chmod(path, 0o640)

    def _daemon(self, argv: list[str], pid_inside: str, record: Record) -> int:
        self.run(argv)
        pid = _wait_for_pid_file(self.path(pid_inside), f"{self.name}: {argv[0]}")
        record.add_pid(pid)
        return pid

    def start_ovs(self, record: Record, underlay_mtu: int) -> None:
        db = os.path.join(self.workdir, "conf.db")
        logs = self._dir("log")
        self.run(["ovsdb-tool", "create", db, OVS_SCHEMA])
        self._daemon(["ovsdb-server", db, "--remote=punix:/run/openvswitch/db.sock",
                      "--pidfile=/run/openvswitch/ovsdb-server.pid",
                      "--unixctl=/run/openvswitch/ovsdb-server.ctl",
                      f"--log-file={logs}/ovsdb-server.log", "--detach", "--no-chdir"],
                     "/run/openvswitch/ovsdb-server.pid", record)
        self.vsctl("--no-wait", "init")
        self._daemon(["ovs-vswitchd", "unix:/run/openvswitch/db.sock",
                      "--pidfile=/run/openvswitch/ovs-vswitchd.pid",
                      f"--log-file={logs}/ovs-vswitchd.log", "--detach", "--no-chdir"],
                     "/run/openvswitch/ovs-vswitchd.pid", record)
        # With the userspace datapath, tunnel packets are routed only from an address on
        # an OVS internal port: the underlay address lives on br-phy, with eth0 its port.
        self.vsctl("--", "add-br", UNDERLAY_BRIDGE,
                   "--", "set", "bridge", UNDERLAY_BRIDGE, "datapath_type=netdev",
                   "--", "set", "interface", UNDERLAY_BRIDGE, f"mtu_request={underlay_mtu}",
                   "--", "add-port", UNDERLAY_BRIDGE, "eth0")
        self.run(["ip", "addr", "add", f"{self.address}/{self.prefixlen}", "dev", UNDERLAY_BRIDGE])
        self.run(["ip", "link", "set", UNDERLAY_BRIDGE, "up"])

    def check_nftables(self) -> None:
        self.run(["nft", "list", "ruleset"])

    def start_sshd(self, record: Record, authorized_keys: str) -> None:
        ssh_dir = self._dir("ssh")
        host_key = os.path.join(ssh_dir, "ssh_host_ed25519_key")
        Runner().run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name,
                      "-f", host_key])
        # sshd reads the key as the user logging in: oneadmin's own file, in its home.
        dot_ssh = self._dir("home", ".ssh", mode=0o700, owned=True)
        keys = os.path.join(dot_ssh, "authorized_keys")
        shutil.copyfile(authorized_keys, keys)
        os.chown(keys, ONEADMIN_ID, ONEADMIN_ID)
        os.chmod(keys, 0o600)
        config = os.path.join(ssh_dir, "sshd_config")
        with open(config, "w", encoding="ascii") as f:
            f.write(SSHD_CONFIG.format(address=self.address, host_key=host_key,
                                       authorized_keys=f"{ONEADMIN_HOME}/.ssh/authorized_keys"))
        self._daemon(["/usr/sbin/sshd", "-f", config, "-E", os.path.join(ssh_dir, "sshd.log")],
                     "/run/sshd.pid", record)

    def give_oneadmin_key(self, key: str, known_hosts: str) -> None:
        """oneadmin here reaches the other hosts as oned's oneadmin does: the lab's key and
        known_hosts in its own ~/.ssh (a frontend, or a host that migrates to another)."""
        dot_ssh = self._dir("home", ".ssh", mode=0o700, owned=True)
        for source, target in ((key, "id_ed25519"), (known_hosts, "known_hosts")):
            shutil.copyfile(source, os.path.join(dot_ssh, target))
            os.chown(os.path.join(dot_ssh, target), ONEADMIN_ID, ONEADMIN_ID)
            os.chmod(os.path.join(dot_ssh, target), 0o600)

    @property
    def oneadmin(self) -> Runner:
        """Commands run locally as oneadmin in its home, as oned runs TM and DS actions on a
        frontend: no login shell, oneadmin's HOME and USER, cwd /var/lib/one."""
        return Runner(prefix=(*self.enter, "runuser", "-u", ONEADMIN, "--", "env", "-C",
                              ONEADMIN_HOME, f"HOME={ONEADMIN_HOME}", f"USER={ONEADMIN}",
                              f"LOGNAME={ONEADMIN}"),
                      timeout=120.0, where=f"{self.name} (oneadmin)")

    def public_host_key(self) -> str:
        with open(os.path.join(self.workdir, "ssh", "ssh_host_ed25519_key.pub"),
                  encoding="ascii") as f:
            kind, key = f.read().split()[:2]
        return f"{kind} {key}"
