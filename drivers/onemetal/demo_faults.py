"""Faults the demo can inject (`onemetal demo --inject NAME`), each one a real breakage an operator
meets, with the remedy an operator applies and the doctor checks that must name it.

Injected mid-run, a fault makes the demo report the failure and exit non-zero; on the
built lab, `onemetal doctor` must FAIL exactly `doctor_checks`, with a remedy naming
`doctor_remedy`, and be all OK again once `remedy` ran (tests/test_demo_doctor.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from onemetal.demo_lab import DATASTORES, GATEWAY_HOST, DemoLab
from onemetal.lab import frontend_host, tools
from onemetal.lab.drive import BRIDGE
from onemetal.nat.render import TABLE
from onemetal.net.bridge import tunnel_name

TUNNEL_HOST, TUNNEL_PEER = "one-1", "one-2"
UNMOUNT_HOST = "one-1"
PACKAGE_HOST, PACKAGE_TOOL, PACKAGE = "one-2", "ethtool", "ethtool"
REMOTES_HOST = "one-1"
REMOTE_FILE = "onemetal/lib/onemetal/deps.py"  # under the host's copy of the remotes


@dataclass(frozen=True)
class Fault:
    description: str
    inject: Callable[[DemoLab], str]   # breaks the lab; says what it did
    remedy: Callable[[DemoLab], str]   # the operator's fix; says what it ran
    doctor_checks: tuple[str, ...]     # what `onemetal doctor` must FAIL, and nothing else
    doctor_remedy: str                 # what its remedy must name


def _flush_nat(demo: DemoLab) -> str:
    demo.lab.host(GATEWAY_HOST).run(["nft", "flush", "table", "ip", TABLE])
    return f"flushed the nft table {TABLE} on the NAT gateway {GATEWAY_HOST}"


def _onenat_sync(demo: DemoLab) -> str:
    demo.onenat("sync")
    return "onenat sync"


def _delete_tunnel(demo: DemoLab) -> str:
    one, two = demo.lab.host(TUNNEL_HOST), demo.lab.host(TUNNEL_PEER)
    port = tunnel_name(two.address)
    one.vsctl("--if-exists", "del-port", BRIDGE, port)
    return f"deleted the tunnel port {port} (to {TUNNEL_PEER}) on {TUNNEL_HOST}"


def _mesh_sync(demo: DemoLab) -> str:
    demo.onemetal("mesh", "sync")
    return "onemetal mesh sync"


def _unmount(demo: DemoLab) -> str:
    demo.lab.host(UNMOUNT_HOST).run(["umount", "-l", DATASTORES])
    return f"unmounted {DATASTORES} on {UNMOUNT_HOST} (a lost NFS mount)"


def _mount_ensure(demo: DemoLab) -> str:
    args = ("mount", "ensure", DATASTORES, "--host", UNMOUNT_HOST)
    demo.onemetal(*args)
    return "onemetal " + " ".join(args)


def _hide_tool(demo: DemoLab) -> str:
    path = tools.hide(demo.lab.host(PACKAGE_HOST), PACKAGE_TOOL)
    return f"hid {path} on {PACKAGE_HOST} (package {PACKAGE} missing)"


def _install_package(demo: DemoLab) -> str:
    tools.unhide(demo.lab.host(PACKAGE_HOST), PACKAGE_TOOL)  # stands for apt-get install
    return f"apt-get install {PACKAGE} (on {PACKAGE_HOST})"


def _change_remote(demo: DemoLab) -> str:
    path = f"{frontend_host.REMOTE_DIR}/{REMOTE_FILE}"
    with open(demo.lab.host(REMOTES_HOST).path(path), "a", encoding="utf-8") as f:
        f.write("# changed by hand\n")
    return f"changed {path} on {REMOTES_HOST} (remotes out of sync)"


def _onehost_sync(demo: DemoLab) -> str:
    frontend_host.sync_remotes(demo.lab, [REMOTES_HOST])
    return f"onehost sync --force (to {REMOTES_HOST})"


FAULTS: dict[str, Fault] = {
    "nat-flush": Fault("the NAT gateway's table flushed", _flush_nat, _onenat_sync,
                       ("nat table",), "onenat sync"),
    # the peer's end of the tunnel sees BFD go down: named too, with the same remedy
    "tunnel": Fault("a tunnel port deleted", _delete_tunnel, _mesh_sync,
                    (f"{TUNNEL_HOST}: tunnel to {TUNNEL_PEER}",
                     f"{TUNNEL_PEER}: tunnel to {TUNNEL_HOST}"), "onemetal mesh sync"),
    "unmount": Fault("a host's datastore mount lost", _unmount, _mount_ensure,
                     (f"{UNMOUNT_HOST}: datastores",),
                     "onemetal mount ensure"),
    "package": Fault("a host missing a package", _hide_tool, _install_package,
                     (f"{PACKAGE_HOST}: package {PACKAGE}",), f"apt-get install {PACKAGE}"),
    "remotes": Fault("a host's remotes out of sync", _change_remote, _onehost_sync,
                     (f"{REMOTES_HOST}: remotes in sync",), "onehost sync --force"),
}


def inject(demo: DemoLab, name: str) -> str:
    return FAULTS[name].inject(demo)


def remedy(demo: DemoLab, name: str) -> str:
    return FAULTS[name].remedy(demo)
