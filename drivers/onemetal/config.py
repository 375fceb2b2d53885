"""onemetal.conf: TOML, every key has a default, unknown keys and wrong types are refused.

The file is /etc/one/onemetal.conf unless ONEMETAL_CONF names another one; a
missing file means all defaults. etc/onemetal.conf documents every key.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from onemetal import conftoml, record
from onemetal.errors import ConfigError
from onemetal.record import field, value

DEFAULT_PATH = "/etc/one/onemetal.conf"


@value
class CoreConfig:
    state_dir: str = "/var/lib/onemetal"
    lock_timeout: float = 60.0
    command_timeout: float = 30.0


@value
class SshConfig:
    user: str = "oneadmin"
    port: int = 22
    key: str = ""
    known_hosts: str = ""
    host_key_policy: str = "yes"
    connect_timeout: int = 10
    remote_dir: str = "/var/tmp/one"
    python: str = "/usr/bin/python3"


@value
class NetConfig:
    bridge: str = "br-mesh"
    datapath: str = "system"
    vxlan_port: int = 4789
    underlay_mtu: int = 0
    bfd: bool = True
    bfd_interval_ms: int = 1000
    mac_age: int = 300
    max_flows_per_nic: int = 2000


@value
class NatConfig:
    store: str = "/var/lib/one/onemetal/nat.db"
    gateway: str = ""
    interface: str = ""
    # Groups (ids or names, "*" any) whose VMs the hooks may give an EIP: see docs/nat.md.
    eip_groups: tuple = ()
    # "GROUP=POOL[,POOL...]": the pools the hooks may take a group's EIPs from; empty: any pool.
    eip_group_pools: tuple = ()
    eip_quota_user: int = 1
    eip_quota_group: int = 10
    # CIDRs and ADDRESS:PORT/PROTO exceptions VMs may not / may reach through the gateway:
    # see nat/fence.py and docs/nat.md.
    blocked_networks: tuple = ()
    allowed: tuple = ()


@value
class StorageConfig:
    # DATASTORE_LOCATION of oned.conf: datastore <id> lives in <datastores_dir>/<id>.
    datastores_dir: str = "/var/lib/one/datastores"
    # The write-gate's mount policy for every datastore: "efs", "nfs", "lab" or "none".
    profile: str = "efs"
    # "ID=PROFILE" exceptions, e.g. "101=none" for a datastore on a local disk.
    datastore_profiles: tuple = ()
    # The share every datastore must be mounted from ("server:/export"); empty: any.
    source: str = ""
    # efs-utils' TLS tunnel (mount -t efs -o tls): the source shows as 127.0.0.1:/ with port=.
    tls: bool = False
    # What the "nfs" profile requires, as "key=value" or "flag" entries.
    nfs_options: tuple = ("hard",)
    # Seconds a look at the share (free space, listing, sizes) may take.
    probe_timeout: float = 10.0
    # `onemetal mount ensure`: seconds per mount attempt, and attempts.
    mount_timeout: float = 30.0
    mount_retries: int = 3
    # Image import from http(s) URLs (DS cp): the largest download, and its time limit.
    url_max_mb: int = 65536
    url_timeout: float = 3600.0
    # CIDRs a download may not connect to (checked on the resolved address, every redirect):
    # loopback, link-local and the EC2 metadata service; add the VPC's CIDR (docs/storage.md).
    url_blocked_networks: tuple = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128",
                                   "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
    # CIDRs a download may reach even inside a blocked one: the operator's own mirrors.
    url_allowed_networks: tuple = ()


@value
class VmmConfig:
    # The libvirt connection of the KVM driver (onemetal.vmm), as OpenNebula's LIBVIRT_URI.
    uri: str = "qemu:///system"
    # Seconds one libvirt call may take before the action gives up waiting on libvirtd.
    call_timeout: float = 60.0
    # Seconds shutdown waits for the guest's ACPI shutdown before destroying it.
    shutdown_timeout: float = 300.0
    # Seconds a live migration may take before it is aborted (the guest stays on the source).
    migrate_timeout: float = 600.0
    # Migrate disks on a file system libvirt does not know as shared (its "unsafe" check).
    migrate_unsafe: bool = False
    # Where every graphics console (VNC, SPICE) listens: a loopback or management address.
    graphics_listen: str = "127.0.0.1"
    # A deployment whose graphics listen elsewhere: "rewrite" it, or "refuse" to deploy.
    graphics_policy: str = "rewrite"


@value
class Config:
    core: CoreConfig = field(default_factory=CoreConfig)
    ssh: SshConfig = field(default_factory=SshConfig)
    net: NetConfig = field(default_factory=NetConfig)
    nat: NatConfig = field(default_factory=NatConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    vmm: VmmConfig = field(default_factory=VmmConfig)


def ssh_runner(ssh: SshConfig, host: str) -> Any:
    """How the frontend reaches `host`: the [ssh] settings as an SshRunner (see onemetal.run)."""
    from onemetal.run import SshRunner, SshTarget

    target = SshTarget(host=host, user=ssh.user, port=ssh.port, key=ssh.key,
                       known_hosts=ssh.known_hosts, host_key_policy=ssh.host_key_policy,
                       connect_timeout=ssh.connect_timeout)
    return SshRunner(target, remote_dir=ssh.remote_dir, python=ssh.python)


def _section(cls: type, name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError("must be a table", field=name)
    known = {f.name: f for f in record.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown key (known: {', '.join(sorted(known))})",
                              field=f"{name}.{key}")
        want = type(known[key].default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is tuple and isinstance(value, list):  # TOML arrays; frozen configs hold tuples
            value = tuple(value)
        if type(value) is not want:
            raise ConfigError(f"must be a {want.__name__}, got {type(value).__name__}",
                              field=f"{name}.{key}")
        values[key] = value
    return cls(**values)


def parse(text: str, source: str = "onemetal.conf") -> Config:
    raw = conftoml.loads(text)  # the plain files onemetal writes, without tomllib's import
    if raw is None:
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML ({exc})", field=source) from None
    sections = {f.name: f for f in record.fields(Config)}
    built = {}
    for name, table in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown section (known: {', '.join(sorted(sections))})",
                              field=f"{source}: [{name}]")
        built[name] = _section(sections[name].default_factory, name, table)  # type: ignore[misc]
    return Config(**built)


# Parsed configurations by (path, the file's identity when read): an action that asks
# several times parses once, and a file changed since (tests, a long-running CLI) is read again.
_loaded: dict[tuple[str, tuple[int, ...] | None], Config] = {}


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        return ()  # open() below names the problem
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load(path: str | None = None) -> Config:
    path = path or os.environ.get("ONEMETAL_CONF") or DEFAULT_PATH
    key = (path, _identity(path))
    cached = _loaded.get(key) if key[1] != () else None
    if cached is None:
        cached = _loaded[key] = _read(path)
    return cached


def _read(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f.read(), path)
    except FileNotFoundError:
        return Config()
    except PermissionError:
        raise ConfigError(f"cannot be read by this user (uid {os.geteuid()}): as root, run "
                          f"`chgrp oneadmin {path} && chmod 0640 {path}`", field=path) from None
