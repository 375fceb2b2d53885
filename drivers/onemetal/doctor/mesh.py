"""Sections 4 and 5 on a host: its peers against the frontend's host pool, each tunnel as the
mesh-health probe reports it (BFD's verdict), and the MTU of the overlay and of every VM port."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from onemetal.doctor_report import FAIL, OK, WARN, Check
from onemetal.net.targets import K_OWNER, K_ROLE, OWNER

SYNC = "run `onemetal mesh sync` on the frontend"
# `KEY="value"` pairs of the probe's ONEMETAL_MESH_PEER=[...] lines (values.template_value quoting).
_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_PEER = "ONEMETAL_MESH_PEER=["


def peer_states(probe_lines: Sequence[str]) -> dict[str, dict[str, str]]:
    """NAME -> the probe's attributes (STATE, DIAGNOSTIC, TUNNEL_IP) per peer line."""
    out = {}
    for line in probe_lines:
        if line.startswith(_PEER):
            attrs = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _PAIR.findall(line)}
            out[attrs.get("NAME", "")] = attrs
    return out


def peer_checks(states: dict[str, dict[str, str]], pool: Sequence[str] | None) -> list[Check]:
    checks = []
    if pool is not None:
        missing, extra = sorted(set(pool) - set(states)), sorted(set(states) - set(pool))
        if missing or extra:
            detail = "; ".join([f"not peers: {', '.join(missing)}"] * bool(missing)
                               + [f"not in the host pool: {', '.join(extra)}"] * bool(extra))
            checks.append(Check("mesh peers", FAIL, detail, SYNC))
        else:
            checks.append(Check("mesh peers", OK, f"{len(pool)} peers, as in the host pool"))
    for name, attrs in sorted(states.items()):
        state, diag = attrs.get("STATE", "unknown"), attrs.get("DIAGNOSTIC", "")
        where = f"{attrs.get('TUNNEL_IP', '?')}: {state}" + (f" ({diag})" if diag else "")
        if state == "up":
            checks.append(Check(f"tunnel to {name}", OK, where))
        elif state == "missing":
            checks.append(Check(f"tunnel to {name}", FAIL, where, SYNC))
        else:
            checks.append(Check(f"tunnel to {name}", WARN if state == "unknown" else FAIL, where,
                                f"check UDP 4789 between the hosts (security group), then {SYNC}"))
    return checks


def link_mtu(name: str) -> int | None:
    """The port's MTU as the kernel has it (a VM's tap or veth), read without a command."""
    try:
        with open(f"/sys/class/net/{name}/mtu", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def overlay_check(enforced: int, underlay: int) -> Check:
    """The overlay MTU the ports get against the underlay's now: VXLAN needs 50 bytes of it."""
    if underlay - 50 < enforced:
        return Check("overlay mtu", FAIL, f"{enforced}, but the underlay is {underlay} now: frames "
                                          f"above {underlay - 50} are dropped", SYNC)
    return Check("overlay mtu", OK, f"{enforced} (underlay {underlay} - 50 for VXLAN)")


def mtu_checks(enforced: int, underlay: int, interfaces: Sequence[object]) -> list[Check]:
    """The overlay MTU and each VM port's (its link's MTU and OVS mtu_request) against it."""
    checks = [overlay_check(enforced, underlay)]
    for iface in interfaces:
        ids = iface.external_ids  # type: ignore[attr-defined]
        if ids.get(K_OWNER) != OWNER or ids.get(K_ROLE) != "vm":
            continue
        name, asked = iface.name, iface.mtu_request  # type: ignore[attr-defined]
        mtu = link_mtu(name)
        fix = f"as root: ovs-vsctl set interface {name} mtu_request={enforced}"
        if asked is not None and asked > enforced:
            checks.append(Check(f"port {name} mtu", FAIL, f"mtu_request {asked} > {enforced}", fix))
        elif mtu is not None and mtu > enforced:
            checks.append(Check(f"port {name} mtu", FAIL, f"mtu {mtu} > {enforced}", fix))
        elif asked is not None and mtu is not None and mtu != asked:
            checks.append(Check(f"port {name} mtu", WARN, f"mtu {mtu}, requested {asked}", fix))
        elif mtu is None:
            checks.append(Check(f"port {name} mtu", WARN, "no such link on this host", fix))
        else:
            checks.append(Check(f"port {name} mtu", OK, f"mtu {mtu}"))
    return checks
