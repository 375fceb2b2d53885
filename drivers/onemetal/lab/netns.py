"""Network namespaces and veth pairs, through the core's runner."""

from __future__ import annotations

import os
import shutil

from onemetal.run import Runner

ROOT = Runner(timeout=15.0)
NETNS_ETC = "/etc/netns"


def in_netns(name: str) -> Runner:
    return Runner(prefix=("ip", "netns", "exec", name), timeout=15.0, where=name)


def add(name: str) -> None:
    ROOT.run(["ip", "netns", "add", name])
    ROOT.run(["ip", "-n", name, "link", "set", "lo", "up"])


def pids(name: str) -> list[int]:
    result = ROOT.run(["ip", "netns", "pids", name], check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def delete(name: str) -> None:
    ROOT.run(["ip", "netns", "del", name], check=False)


def exists(name: str) -> bool:
    return os.path.exists(f"/var/run/netns/{name}")


def write_hosts_file(name: str, entries: dict[str, str]) -> str:
    """`ip netns exec` bind-mounts /etc/netns/<name>/hosts over /etc/hosts: host names resolve."""
    directory = os.path.join(NETNS_ETC, name)
    os.makedirs(directory, exist_ok=True)
    lines = ["127.0.0.1 localhost"] + [f"{ip} {host}" for host, ip in sorted(entries.items())]
    with open(os.path.join(directory, "hosts"), "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    return directory


def remove_etc(directory: str) -> None:
    if directory.startswith(NETNS_ETC + "/"):
        shutil.rmtree(directory, ignore_errors=True)


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int) -> None:
    """A veth pair with one end in each namespace, both up, checksum offload off.

    TX checksum offload leaves partial checksums that OVS's userspace datapath
    forwards as they are: TCP then never connects."""
    ROOT.run(["ip", "-n", ns_a, "link", "add", name_a, "mtu", str(mtu), "type", "veth",
              "peer", "name", name_b, "netns", ns_b, "mtu", str(mtu)])
    for ns, dev in ((ns_a, name_a), (ns_b, name_b)):
        ROOT.run(["ip", "-n", ns, "link", "set", dev, "up"])
        in_netns(ns).run(["ethtool", "-K", dev, "tx", "off"])
