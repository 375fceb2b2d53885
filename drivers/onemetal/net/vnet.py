"""vnet_create / vnet_delete: run by oned's IPAM driver on the frontend when a vnet is created or deleted.

vnet_create refuses, before any VM uses it, a vnet this driver cannot carry (a
BRIDGE other than the mesh bridge, a VNI out of range, an MTU above the overlay's),
so the operator sees the reason on the vnet (state ERROR) instead of on every VM
later. When the underlay MTU is configured and the vnet sets none, it prints the
overlay MTU and GUEST_MTU, which oned appends to the vnet's template: the guest
context and the VMM's libvirt <mtu> then get it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal import config
from onemetal.errors import InputError
from onemetal.net.mtu import VXLAN_OVERHEAD, overlay_mtu
from onemetal.opennebula import payload, values
from onemetal.opennebula.xmlview import expect_root, opt

MAX_VNI = 2**24 - 1  # VXLAN's 24-bit network identifier; 0 is not used by OpenNebula


def _attr(root: object, name: str) -> str | None:
    return opt(root, name) or opt(root, f"TEMPLATE/{name}")  # type: ignore[arg-type]


def check(root: object, net: config.NetConfig) -> list[str]:
    """Pure: the template lines to append, or InputError naming the field."""
    expect_root(root, "VNET")  # type: ignore[arg-type]
    bridge = _attr(root, "BRIDGE")
    if bridge != net.bridge:
        raise InputError(f"{bridge!r} is not the mesh bridge {net.bridge!r} (onemetal.conf "
                         "net.bridge): every vnet of this driver uses it, kept apart by VNI",
                         "VNET/BRIDGE")
    vlan = _attr(root, "VLAN_ID")
    if vlan:
        values.integer(vlan, "VNET/VLAN_ID", 1, MAX_VNI)
    elif _attr(root, "VLAN_ID_AUTOMATIC") not in ("1", "YES", "yes"):
        raise InputError("missing: set VLAN_ID (the VNI) or AUTOMATIC_VLAN_ID=YES", "VNET/VLAN_ID")
    if not net.underlay_mtu:
        return []
    maximum = overlay_mtu(net.underlay_mtu)
    lines = []
    for name in ("MTU", "GUEST_MTU"):
        value = _attr(root, name)
        if value is None:
            lines.append(f'{name}="{maximum}"')
        elif values.integer(value, f"VNET/{name}", 68) > maximum:
            raise InputError(f"{value} is above the overlay maximum {maximum} (underlay "
                             f"{net.underlay_mtu} - {VXLAN_OVERHEAD})", f"VNET/{name}")
    return lines


def _vnet_id(args: Sequence[str]) -> int:
    if len(args) != 1:
        raise InputError("expected exactly one argument, the vnet id", "argv")
    return values.integer(args[0], "argv[1] (vnet id)")


def create(args: Sequence[str], stdin: TextIO) -> str:
    _vnet_id(args)
    root = payload.read_payload(stdin.read(), "stdin", root="VNET")
    return "\n".join(check(root, config.load().net))


def delete(args: Sequence[str], stdin: TextIO) -> None:
    """Nothing to undo: ports and tunnels go with the VMs and hosts that used them."""
    _vnet_id(args)
    payload.read_payload(stdin.read(), "stdin", root="VNET")
