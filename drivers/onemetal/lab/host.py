"""One lab host: namespaces, Open vSwitch (userspace datapath), nftables, sshd.

The host's daemons run in a private mount namespace with their own /run,
/var/tmp and /var/lib/onemetal, so everything on the host (the drivers run over
SSH included) uses production's default paths: /run/openvswitch/db.sock,
/var/tmp/one, /var/lib/onemetal.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from onemetal.lab import netns
from onemetal.lab.registry import Record, alive
from onemetal.run import Result, Runner

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
UNDERLAY_BRIDGE = "br-phy"
# Bounded: how long a daemon may take to write its pid file.
_START_TIMEOUT = 10.0

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {host_key}
PidFile /run/sshd.pid
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
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
        return Runner(prefix=("nsenter", "-t", str(self.anchor_pid), "-m", "-n", "--"),
                      timeout=30.0, where=self.name)

    def run(self, argv: list[str], **kwargs: object) -> Result:
        return self.runner.run(argv, **kwargs)  # type: ignore[arg-type]

    def vsctl(self, *args: str) -> str:
        return self.run(["ovs-vsctl", "--timeout=10", *args]).stdout.strip()

    def path(self, inside: str) -> str:
        """A path inside the host's mount namespace, as seen from the machine."""
        return f"/proc/{self.anchor_pid}/root{inside}"

    def _dir(self, *parts: str) -> str:
        path = os.path.join(self.workdir, *parts)
        os.makedirs(path, exist_ok=True)
        return path

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
        for mount_point in ("/var/lib/onemetal", "/etc/one"):
            os.makedirs(mount_point, exist_ok=True)  # mount points; they stay empty here
        self.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"])
        self.run(["mount", "--bind", self._dir("var-tmp"), "/var/tmp"])
        self.run(["mount", "--bind", self._dir("state"), "/var/lib/onemetal"])
        self.run(["mount", "--bind", self._dir("etc-one"), "/etc/one"])
        for inside in ("/run/openvswitch", "/run/sshd"):
            os.makedirs(self.path(inside), mode=0o755, exist_ok=True)

    def write_conf(self, text: str) -> None:
        """The host's /etc/one/onemetal.conf, as the drivers run over SSH read it."""
        with open(os.path.join(self._dir("etc-one"), "onemetal.conf"), "w", encoding="utf-8") as f:
            f.write(text)

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
        config = os.path.join(ssh_dir, "sshd_config")
        with open(config, "w", encoding="ascii") as f:
            f.write(SSHD_CONFIG.format(address=self.address, host_key=host_key,
                                       authorized_keys=authorized_keys))
        self._daemon(["/usr/sbin/sshd", "-f", config, "-E", os.path.join(ssh_dir, "sshd.log")],
                     "/run/sshd.pid", record)

    def public_host_key(self) -> str:
        with open(os.path.join(self.workdir, "ssh", "ssh_host_ed25519_key.pub"),
                  encoding="ascii") as f:
            kind, key = f.read().split()[:2]
        return f"{kind} {key}"
