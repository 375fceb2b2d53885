"""`onemetal doctor storage`: is each datastore directory on this machine on the share it needs?

Per datastore (the ids under datastores_dir, and those datastore_profiles names): the
mount holding it (type, source, options) and what its policy finds missing or wrong
(the write-gate's own conditions, storage/policy.py), free space, whether the bare
mount point is immutable (so a write fails while the share is not mounted), and whether
the NFS server's port answers. Only mountinfo is read in this process: every look at the
share itself (listing, statvfs, file flags, the connect) runs in a child with a deadline,
so a hung share shows as "did not answer" instead of hanging the doctor.
"""

from __future__ import annotations

import fcntl
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.config import StorageConfig
    from onemetal.storage.mounts import Mount
    from onemetal.storage.policy import Policy

from onemetal.doctor_report import FAIL, OK, WARN, Check
from onemetal.errors import OneMetalError
from onemetal.storage import datastores, mounts as mountinfo, probe, reach
from onemetal.storage.mounts import covering
from onemetal.storage.policy import problems

FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long): lsattr's ioctl
FS_IMMUTABLE_FL = 0x10
CONNECT_TIMEOUT = 3.0  # at most; less if storage.probe_timeout is shorter
LOW_SPACE = 0.10  # a WARN below this share of the total free


def _flags(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)[:4])[0])
    finally:
        os.close(fd)


def _ids(cfg: StorageConfig) -> tuple[list[int], list[Check]]:
    root = cfg.datastores_dir
    named = {int(e.partition("=")[0]) for e in cfg.datastore_profiles
             if e.partition("=")[0].strip().isdigit()}
    try:
        found = probe.in_child(lambda: [n for n in os.listdir(root) if n.isdigit()],
                               cfg.probe_timeout, root)
    except probe.ProbeTimeout as exc:
        return sorted(named), [Check("datastores", FAIL, str(exc),
                                     "check the share holding it and its NFS server")]
    except probe.ProbeFailed as exc:
        return sorted(named), [Check("datastores", WARN, f"cannot be listed: {exc}",
                                     f"create it (install -d -o oneadmin -g oneadmin {root})")]
    return sorted(named | {int(n) for n in found}), []


def _options_text(mount: Mount) -> str:
    return ",".join(f"{k}={v}" if v else k for k, v in mount.options.items())


def _under(mount: Mount, cfg: StorageConfig) -> bool:
    root = os.path.normpath(cfg.datastores_dir)
    return mount.mount_point == root or mount.mount_point.startswith(root + "/")


def mount_checks(ds: int, path: str, mount: Mount | None, policy: Policy,
                 cfg: StorageConfig) -> list[Check]:
    """The mount and policy checks: one Check per failed condition of the write-gate."""
    name, ensure = f"ds {ds} mount", f"run `onemetal mount ensure {ds}`"
    if not policy.needs_mount:
        return [Check(name, OK, f"{path}: profile {policy.name}, no share needed")]
    found = problems(mount, path, policy)
    if mount is None or (found and found[0].startswith(f"{path} is on")):
        where = f"{mount.mount_point} ({mount.fstype})" if mount else "no mount"
        if mount is not None and _under(mount, cfg):
            return [Check(name, FAIL, f"mounted: yes, wrong file system: {found[0]}",
                          f"umount {mount.mount_point}, then {ensure}")]
        return [Check(name, FAIL, f"mounted: no ({path} is on {where})", ensure)]
    head = Check(name, OK, f"mounted: yes, on {mount.mount_point} ({mount.fstype} from "
                           f"{mount.source}, {_options_text(mount)})")
    remount = f"remount with -o {policy.mount_options} (umount {mount.mount_point}; {ensure})"
    return [head] + [Check(f"ds {ds} policy", FAIL, line,
                           ensure if line.startswith("source") else remount) for line in found]


def space_check(ds: int, path: str, cfg: StorageConfig) -> Check:
    name = f"ds {ds} space"
    try:
        got = probe.space(path, cfg.probe_timeout)
    except probe.ProbeTimeout as exc:
        return Check(name, FAIL, str(exc), "check the NFS server and the network to it")
    except probe.ProbeFailed as exc:
        return Check(name, FAIL, str(exc), f"run `onemetal mount ensure {ds}`")
    gib = 1 << 30
    detail = f"{got['free'] / gib:.1f} GiB free of {got['total'] / gib:.1f} GiB"
    if got["total"] and got["free"] < LOW_SPACE * got["total"]:
        return Check(name, WARN, detail, "free space in the datastore or grow the share")
    return Check(name, OK, detail)


def immutable_check(ds: int, path: str, mounted: bool, cfg: StorageConfig) -> Check:
    name = f"ds {ds} bare mount point"
    if mounted:
        return Check(name, OK, f"immutable: unknown ({path} is covered by the share)")
    try:
        flags = probe.in_child(lambda: _flags(path), cfg.probe_timeout, path)
    except OneMetalError as exc:
        return Check(name, WARN, f"immutable: unknown ({exc})")
    if flags & FS_IMMUTABLE_FL:
        return Check(name, OK, f"immutable: yes ({path}: writes fail while the share is not mounted)")
    return Check(name, WARN, f"immutable: no ({path}: writes land on the local disk if the share "
                             "is lost)", f"as root, while unmounted: chattr +i {path}")


def server_check(ds: int, mount: Mount | None, cfg: StorageConfig, timeout: float) -> Check:
    name = f"ds {ds} server"
    target = reach.server(mount, cfg.source)
    if target is None:
        return Check(name, WARN, "no NFS server known (not mounted, storage.source empty)",
                     "set storage.source in onemetal.conf")
    host, port = target
    try:
        peer = reach.connect(host, port, timeout)
    except probe.ProbeTimeout:
        return Check(name, FAIL, f"{host} port {port}: no answer within {timeout:g} s",
                     "check the server, its security group (TCP 2049) and the route to it")
    except probe.ProbeFailed as exc:
        return Check(name, FAIL, str(exc),
                     "check that the NFS server runs and accepts TCP 2049 from this host")
    return Check(name, OK, f"{host} port {port} reachable ({peer})")


def datastore(ds: int, cfg: StorageConfig, mounts: list[Mount]) -> list[Check]:
    path = os.path.join(cfg.datastores_dir, str(ds))
    policy = datastores.policy_for(ds, cfg)
    mount = covering(mounts, path)
    checks = mount_checks(ds, path, mount, policy, cfg)
    on_share = bool(policy.needs_mount and checks[0].status == OK)
    if on_share or not policy.needs_mount:  # else statvfs would report the local disk's space
        checks.append(space_check(ds, path, cfg))
    if policy.needs_mount:
        checks.append(immutable_check(ds, path, on_share and mount.mount_point == path, cfg))  # type: ignore[union-attr]
        timeout = min(CONNECT_TIMEOUT, cfg.probe_timeout)
        checks.append(server_check(ds, mount if on_share else None, cfg, timeout))
    return checks


def _none_found(cfg: StorageConfig, table: list[Mount]) -> Check:
    """No datastore directory at all: a share that holds none yet, or (FAIL) a share that should
    hold them all and is not mounted there, as when a host lost the mount of the whole
    datastores directory: the empty directory under it is all that is left."""
    root = os.path.normpath(cfg.datastores_dir)
    policy = datastores.policy_for(None, cfg)
    mount = covering(table, root)
    if policy.needs_mount and (mount is None or problems(mount, root, policy)):
        where = f"{mount.mount_point} ({mount.fstype})" if mount else "no mount"
        return Check("datastores", FAIL, f"no datastore under {root}, which is on {where}, not "
                     f"a share of profile {policy.name}",
                     f"mount the share: `onemetal mount ensure {root}`")
    return Check("datastores", WARN, f"no datastore under {root}")


def run(cfg: StorageConfig, mounts: list[Mount] | None = None) -> list[Check]:
    """Every storage check of this machine, datastore by datastore."""
    table = mountinfo.read() if mounts is None else mounts
    ids, checks = _ids(cfg)
    if not ids:
        checks.append(_none_found(cfg, table))
    for ds in ids:
        checks += datastore(ds, cfg, table)
    return checks


def entry(args: list[str], stdin: object) -> str:
    """Host entry "storage-doctor": this host's storage checks as JSON (doctor_report.dumps)."""
    from onemetal.doctor_report import dumps
    from onemetal.errors import InputError

    if args:
        raise InputError(f"takes no arguments, got {' '.join(args)!r}", "storage-doctor")
    return dumps(run(datastores.settings()))
