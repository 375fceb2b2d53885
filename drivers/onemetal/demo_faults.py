"""Faults the demo can inject mid-run (`onemetal demo --inject NAME`), each one a real breakage an
operator meets: the run must then report the failure clearly and exit non-zero."""

from __future__ import annotations

from typing import Callable

from onemetal.demo_lab import DATASTORES, GATEWAY_HOST, DemoLab
from onemetal.lab.drive import BRIDGE
from onemetal.nat.render import TABLE
from onemetal.net.bridge import tunnel_name


def _flush_nat(demo: DemoLab) -> str:
    demo.lab.host(GATEWAY_HOST).run(["nft", "flush", "table", "ip", TABLE])
    return f"flushed the nft table {TABLE} on the NAT gateway {GATEWAY_HOST}"


def _delete_tunnel(demo: DemoLab) -> str:
    one, two = demo.lab.host("one-1"), demo.lab.host("one-2")
    port = tunnel_name(two.address)
    one.vsctl("--if-exists", "del-port", BRIDGE, port)
    return f"deleted the tunnel port {port} (to one-2) on one-1"


def _unmount(demo: DemoLab) -> str:
    demo.lab.host("one-1").run(["umount", "-l", DATASTORES])
    return f"unmounted {DATASTORES} on one-1 (a lost NFS mount)"


FAULTS: dict[str, tuple[str, Callable[[DemoLab], str]]] = {
    "nat-flush": ("the NAT gateway's table flushed", _flush_nat),
    "tunnel": ("a tunnel port deleted", _delete_tunnel),
    "unmount": ("a host's datastore mount lost", _unmount),
}


def inject(demo: DemoLab, name: str) -> str:
    return FAULTS[name][1](demo)
