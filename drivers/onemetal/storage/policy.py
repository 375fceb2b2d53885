"""A datastore's mount policy and the write-gate every writing action passes first.

OpenNebula's own drivers `mkdir -p` into a datastore path whether or not the share
is mounted, so a lost mount silently fills the host's root disk. Here a write is
allowed only when the mount holding the path is of an accepted type, from the
expected source, with the required options; otherwise the action fails naming
the path and each failed condition, and writes nothing.

Profiles: "efs" (AWS's recommended NFS 4.1 options), "nfs" (any NFS, hard mount),
"lab" (the test lab's FUSE client of a real NFS server: the kernel here has no NFS
client) and "none" (a local datastore: no mount required).

>>> from onemetal.storage.mounts import parse_line
>>> local = parse_line("1 0 8:1 / / rw - ext4 /dev/sda1 rw")
>>> problems(local, "/var/lib/one/datastores/1", profile("efs"))[0]
'/var/lib/one/datastores/1 is on / (ext4 from /dev/sda1), not an NFS share (want nfs4)'
"""

from __future__ import annotations

import fnmatch
from onemetal.errors import ConfigError, OneMetalError
from onemetal.record import replace, value
from onemetal.storage.mounts import Mount, covering, read

# What AWS documents for EFS (mount with NFS 4.1 and these options), as mountinfo lists them.
EFS_OPTIONS = (("vers", "4.1"), ("rsize", "1048576"), ("wsize", "1048576"), ("hard", None),
               ("timeo", "600"), ("retrans", "2"), ("noresvport", None))
NFS_PORT = "2049"


@value
class Policy:
    name: str
    fstypes: tuple[str, ...]                   # fnmatch patterns; empty: no mount needed
    options: tuple[tuple[str, str | None], ...] = ()  # required; None: a flag
    source: str = ""                           # server:/export expected; empty: any
    tls: bool = False                          # efs-utils' TLS tunnel: 127.0.0.1:/ and port=

    @property
    def needs_mount(self) -> bool:
        return bool(self.fstypes)

    @property
    def mount_options(self) -> str:
        """The options as `mount -o` takes them: `key=value`, a flag alone."""
        return ",".join(k if v is None else f"{k}={v}" for k, v in self.options)


PROFILES = {
    "efs": Policy("efs", ("nfs4",), EFS_OPTIONS),
    "nfs": Policy("nfs", ("nfs4", "nfs"), (("hard", None),)),
    "lab": Policy("lab", ("fuse.*",)),
    "none": Policy("none", ()),
}


class WriteGateError(OneMetalError):
    """A datastore path is not on the share its policy wants: nothing was written."""


def profile(name: str, *, source: str = "", tls: bool = False,
            options: tuple[tuple[str, str | None], ...] | None = None) -> Policy:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})", "profile")
    base = PROFILES[name]
    return replace(base, source=source, tls=tls, options=base.options if options is None else options)


def _hard(mount: Mount) -> bool:
    # Kernels before 5.x list no "hard": a mount is hard unless it says soft.
    return "hard" in mount.options or not ({"soft", "softerr"} & set(mount.options))


def _option_problems(mount: Mount, policy: Policy) -> list[str]:
    out = []
    for key, value in policy.options:
        if key == "hard":
            if not _hard(mount):
                out.append("option hard missing (mounted soft: I/O errors would reach the VMs)")
        elif key not in mount.options:
            out.append(f"option {key}{'=' + value if value else ''} missing")
        elif value is not None and mount.options[key] != value:
            out.append(f"option {key}={mount.options[key]}, want {key}={value}")
    return out


def _source_problems(mount: Mount, policy: Policy) -> list[str]:
    if not policy.source or mount.source == policy.source:
        return []
    port = mount.options.get("port", NFS_PORT)
    if policy.tls and mount.source == "127.0.0.1:/" and port not in ("", "0", NFS_PORT):
        return []  # efs-utils' stunnel on a local port stands for the EFS source
    return [f"source {mount.source}, want {policy.source}"
            + (" (or 127.0.0.1:/ through efs-utils' TLS tunnel)" if policy.tls else "")]


def problems(mount: Mount | None, path: str, policy: Policy) -> list[str]:
    """Every condition the mount holding `path` fails, one line each (empty: the gate opens)."""
    if not policy.needs_mount:
        return []
    if mount is None:
        return [f"{path} is on no mount at all"]
    if not any(fnmatch.fnmatchcase(mount.fstype, p) for p in policy.fstypes):
        return [f"{path} is on {mount.mount_point} ({mount.fstype} from {mount.source}), not an "
                f"NFS share (want {' or '.join(policy.fstypes)})"]
    return _source_problems(mount, policy) + _option_problems(mount, policy)


def write_gate(path: str, policy: Policy, mounts: list[Mount] | None = None) -> Mount | None:
    """Open the gate for a write under `path`, or raise WriteGateError naming each failed condition."""
    found = covering(read() if mounts is None else mounts, path)
    failed = problems(found, path, policy)
    if failed:
        raise WriteGateError(f"refusing to write ({policy.name} policy): {'; '.join(failed)}",
                             field=path)
    return found
