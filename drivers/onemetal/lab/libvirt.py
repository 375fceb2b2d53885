"""The lab's libvirt: virtlogd and libvirtd inside a lab host, qemu under TCG, as on a KVM node.

Each daemon pair runs in the host's network and mount namespaces, so it sees
that host's /run (its own /run/libvirt, and /run/openvswitch/db.sock of the
host's OVS, which libvirt's ovs-vsctl calls use with a clean environment) and
its own /etc/libvirt, /var/lib/libvirt and /var/log/libvirt, bound from the
host's workdir. Like OpenNebula's node packages: qemu runs as oneadmin, without
dynamic ownership, and oneadmin is in group libvirt, which owns the read-write
socket. No polkit, cgroups, per-domain mount namespaces or security driver here.

libvirtd probes qemu's capabilities on its first start (~12 s) and caches them
in /var/cache/libvirt/qemu, keyed by the qemu binary and libvirt's version; the
lab binds one machine-wide cache directory there for every host, so only the
first start on a machine pays for the probe.

libvirt refuses a migration between two daemons with the same host UUID ("the
same host"): the hosts share the machine's SMBIOS, so each libvirtd gets its own
host_uuid, derived from the host's name, and runs in its own UTS namespace whose
hostname is that name, as each node of a cloud has its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
import uuid
from dataclasses import dataclass

from onemetal.lab.host import ONEADMIN, LabError, LabHost, _wait_for_pid_file
from onemetal.lab.registry import Record, alive, stop_pids
from onemetal.run import CommandError

URI = "qemu:///system"
# Shared by every lab host and run on this machine (see the module's docstring).
CAPS_CACHE = "/var/cache/onemetal-lab/libvirt"
# Bounded: the first start (capability probe) takes ~12 s here.
_READY_TIMEOUT = 60.0

LIBVIRTD_CONF = """\
unix_sock_group = "libvirt"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
host_uuid = "{host_uuid}"
"""
# libvirtd under its own hostname: unshare --uts, then sethostname and exec (no shell).
_WITH_HOSTNAME = ("import os, socket, sys; socket.sethostname(sys.argv[1]); "
                  "os.execvp(sys.argv[2], sys.argv[2:])")
QEMU_CONF = f"""\
user = "{ONEADMIN}"
group = "{ONEADMIN}"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
remember_owner = 0
"""


@dataclass
class Libvirt:
    host: LabHost
    pids: list[int]
    started_in: float  # seconds from launch until a qemu:///system connection answers

    def virsh(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        """virsh as root inside the host (the tests' view of libvirt, never the driver's)."""
        return self.host.run(["virsh", "-c", URI, *args], check=check,
                             timeout=timeout).stdout  # type: ignore[arg-type]

    def qemu_pids(self) -> list[int]:
        found = []
        # a running domain has <name>.xml (its status) next to <name>.pid; driver.pid is libvirtd's
        for status in glob.glob(self.host.path("/run/libvirt/qemu/*.xml")):
            try:
                with open(status.removesuffix(".xml") + ".pid", encoding="ascii") as f:
                    text = f.read().strip()
            except FileNotFoundError:
                continue
            if text.isdigit() and alive(int(text)):
                found.append(int(text))
        return found

    def stop_daemons(self) -> None:
        """libvirtd and virtlogd only, by pid: the guests go on running, as on a node."""
        if stop_pids(self.pids):
            raise LabError(f"{self.host.name}: libvirt daemons {self.pids} did not stop")

    def stop(self) -> None:
        """The guests (by pid), then the daemons; raises if any outlives its bounded wait."""
        left = stop_pids(self.qemu_pids())
        self.stop_daemons()
        if left:
            raise LabError(f"{self.host.name}: qemu {left} did not stop")


def _bind_dir(host: LabHost, name: str, inside: str, source: str = "") -> str:
    path = source or os.path.join(host.workdir, "libvirt", name)
    os.makedirs(path, mode=0o755, exist_ok=True)
    host.run(["mount", "--bind", path, inside])
    return path


def _add_to_group(host: LabHost, group: str) -> None:
    """oneadmin in `group` of the host's own copy of /etc/group (bound over it: same inode)."""
    path = os.path.join(host.workdir, "etc", "group")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == group and ONEADMIN not in fields[3].split(","):
            fields[3] = ",".join(filter(None, [fields[3], ONEADMIN]))
            lines[i] = ":".join(fields)
    with open(path, "r+", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.truncate()


def host_uuid(host: LabHost) -> str:
    """The host's own libvirt host UUID: stable per name, distinct between hosts."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{host.name}.onemetal-lab"))


def _configure(host: LabHost) -> str:
    etc = os.path.join(host.workdir, "libvirt", "etc")
    shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True)
    for name, text in (("libvirtd.conf", LIBVIRTD_CONF.format(host_uuid=host_uuid(host))),
                       ("qemu.conf", QEMU_CONF)):
        with open(os.path.join(etc, name), "w", encoding="ascii") as f:
            f.write(text)
    _bind_dir(host, "etc", "/etc/libvirt", etc)
    lib = _bind_dir(host, "lib", "/var/lib/libvirt")
    for sub in ("qemu", "qemu/save", "qemu/snapshot", "qemu/checkpoint", "qemu/dump",
                "qemu/ram", "qemu/nvram", "images"):
        os.makedirs(os.path.join(lib, sub), mode=0o755, exist_ok=True)
    _bind_dir(host, "log", "/var/log/libvirt")
    os.makedirs(CAPS_CACHE, mode=0o755, exist_ok=True)
    _bind_dir(host, "cache", "/var/cache/libvirt", CAPS_CACHE)
    _add_to_group(host, "libvirt")
    # /dev/kvm (nested, unreliable here) hidden behind a root-only plain file: qemu finds no
    # KVM both when libvirtd probes as root and when it checks the cache for oneadmin, so the
    # cached capabilities stay valid (with KVM usable to root only, every start re-probes).
    no_kvm = os.path.join(host.workdir, "libvirt", "no-kvm")
    with open(no_kvm, "w", encoding="ascii"):
        pass
    os.chmod(no_kvm, 0o600)
    host.run(["mount", "--bind", no_kvm, "/dev/kvm"])
    return os.path.join(etc, "libvirtd.conf")


def start(host: LabHost, record: Record) -> Libvirt:
    """virtlogd and libvirtd in `host`, waited for until qemu:///system answers."""
    begin = time.monotonic()
    conf = _configure(host)
    host.run(["mkdir", "-p", "/run/libvirt"])
    pids = []
    libvirtd = ["unshare", "--uts", "--", "/usr/bin/python3", "-c", _WITH_HOSTNAME, host.name,
                "libvirtd", "-d", "-f", conf, "-p", "/run/libvirt/libvirtd.pid"]
    for name, argv in (("virtlogd", ["virtlogd", "-d", "-p", "/run/libvirt/virtlogd.pid"]),
                       ("libvirtd", libvirtd)):
        host.run(argv)
        pid = _wait_for_pid_file(host.path(argv[-1]), f"{host.name}: {name}")
        record.add_pid(pid)
        pids.append(pid)
    daemons = Libvirt(host, pids, 0.0)
    try:
        daemons.virsh("version", timeout=_READY_TIMEOUT)
    except CommandError as exc:
        stop_pids(pids)
        raise LabError(f"{host.name}: libvirtd did not answer on {URI} within "
                       f"{_READY_TIMEOUT:g} s: {exc}") from None
    daemons.started_in = time.monotonic() - begin
    return daemons
