"""The lab's NFS: a real NFSv4 server (nfs-ganesha, FSAL VFS) in a lab host, and the FUSE client.

The kernel here has neither NFS server nor client. ganesha serves NFSv4 only
(no rpcbind, NLM or rquota), bound to the host's underlay address, with its
config, pid, log and recovery files under the lab's workdir, and no grace
period; it exports a directory of the workdir as SERVER:/export. A host mounts it
with `mount -t fuse.nfs4 SERVER:/export DIR` (onemetal.lab.nfs_fuse): the lab
puts the program `nfs4` in the host's /usr/local/sbin, where mount's FUSE
helper finds it, also under sudo's secure_path.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from onemetal.lab.host import LabHost, LabError, _wait_for_pid_file
from onemetal.lab.registry import Record, alive, stop_pids
from onemetal.run import CommandError
from onemetal.storage import mounts

GANESHA = "/usr/bin/ganesha.nfsd"
PSEUDO = "/export"
PORT = 2049
# Bounded: ganesha answers in 0.2-2.2 s on this machine.
_PORT_TIMEOUT = 15.0
# Where each client records its pid, inside the host's own /run.
CLIENT_PIDS = "/run/lab-nfs4"
DRIVERS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = """\
NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {port};
    Bind_addr = {address};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSV4 {{
    Graceless = true;
    Only_Numeric_Owners = true;
    RecoveryBackend = fs;
    RecoveryRoot = {recovery};
}}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1;
    Path = {path};
    Pseudo = {pseudo};
    Attr_Expiration_Time = 0;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = WARN; }}
"""

# Connects until the port answers, inside the host's network namespace, in one process.
_WAIT_PORT = """\
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.02)
sys.exit(1)
"""

SHIM = """\
#!/usr/bin/python3 -I
# The lab's NFS client (onemetal.lab.nfs_fuse), run by mount.fuse3 for `mount -t fuse.nfs4`.
import sys
sys.path.insert(0, {drivers!r})
from onemetal.lab.nfs_fuse import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class NfsServer:
    host: LabHost
    export_dir: str  # the exported directory, as the machine (and the host) sees it
    pid: int
    started_in: float

    @property
    def source(self) -> str:
        return f"{self.host.address}:{PSEUDO}"

    def stop(self) -> None:
        """TERM by pid, bounded; raises if the server outlives it."""
        if stop_pids([self.pid]):
            raise LabError(f"{self.host.name}: ganesha {self.pid} did not stop")


def start_server(host: LabHost, record: Record, export_dir: str = "",
                 owner: int = 0) -> NfsServer:
    """ganesha exporting `export_dir` (owned by uid/gid `owner`: set before ganesha caches it)."""
    begin = time.monotonic()
    base = os.path.join(host.workdir, "nfs")
    export_dir = export_dir or os.path.join(base, "export")
    for path in (base, export_dir, os.path.join(base, "recovery")):
        os.makedirs(path, exist_ok=True)
    os.chown(export_dir, owner, owner)
    conf, pid_file = os.path.join(base, "ganesha.conf"), os.path.join(base, "ganesha.pid")
    with open(conf, "w", encoding="ascii") as f:
        f.write(CONFIG.format(port=PORT, address=host.address, path=export_dir, pseudo=PSEUDO,
                              recovery=os.path.join(base, "recovery")))
    host.run([GANESHA, "-f", conf, "-p", pid_file, "-L", os.path.join(base, "ganesha.log"),
              "-N", "NIV_WARN"])
    pid = _wait_for_pid_file(pid_file, f"{host.name}: ganesha")
    record.add_pid(pid)
    try:
        host.run(["python3", "-I", "-c", _WAIT_PORT, host.address, str(PORT), str(_PORT_TIMEOUT)],
                 timeout=_PORT_TIMEOUT + 5)
    except CommandError:
        stop_pids([pid])
        raise LabError(f"{host.name}: ganesha did not answer on {host.address}:{PORT} within "
                       f"{_PORT_TIMEOUT:g} s (see {base}/ganesha.log)") from None
    return NfsServer(host, export_dir, pid, time.monotonic() - begin)


def install_client(host: LabHost) -> None:
    """Put `nfs4` in the host's /usr/local/sbin (a directory of its own, bound over the machine's)."""
    sbin = os.path.join(host.workdir, "sbin")
    os.makedirs(sbin, exist_ok=True)
    shim = os.path.join(sbin, "nfs4")
    with open(shim, "w", encoding="ascii") as f:
        f.write(SHIM.format(drivers=DRIVERS))
    os.chmod(shim, 0o755)
    host.run(["mount", "--bind", sbin, "/usr/local/sbin"])
    host.run(["mkdir", "-p", CLIENT_PIDS])


def client_pids(host: LabHost) -> list[int]:
    try:
        names = os.listdir(host.path(CLIENT_PIDS))
    except FileNotFoundError:
        return []
    return [int(n) for n in names if n.isdigit() and alive(int(n))]


def stop_clients(host: LabHost) -> list[int]:
    """Unmount every FUSE NFS mount of the host and stop its clients; the pids left alive."""
    for mount in reversed(mounts.read(f"/proc/{host.anchor_pid}/mountinfo")):
        if mount.fstype == "fuse.nfs4":
            host.run(["umount", "-l", mount.mount_point], check=False)
    return stop_pids(client_pids(host))
