"""Host entry "host-doctor": this host's sections as JSON (doctor_report.dumps).

stdin is the frontend's JSON: {"files": {path in the remotes tree: sha256}, "peers": [the
host pool's other members] or null}. The remotes tree is the one this entry runs from.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

from onemetal.doctor_report import FAIL, Check, dumps
from onemetal.errors import InputError, OneMetalError

LIBVIRT_TIMEOUT = 5.0  # seconds libvirtd's socket has to accept
# <remote_dir>/onemetal/lib/onemetal/doctor/host.py: four levels up is <remote_dir>
REMOTE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))


def request(text: str) -> tuple[dict[str, str], list[str] | None]:
    from onemetal.doctor.remotes import relative

    try:
        data: Any = json.loads(text or "{}")
        files, peers = data.get("files", {}), data.get("peers")
        if not isinstance(files, dict) or not all(isinstance(d, str) for d in files.values()):
            raise ValueError("files is not an object of digests")
        if peers is not None and not (isinstance(peers, list)
                                      and all(isinstance(p, str) for p in peers)):
            raise ValueError("peers is not a list of names")
    except (ValueError, AttributeError) as exc:
        raise InputError(f"not a doctor request: {exc}", "host-doctor stdin") from None
    return {relative(r, "host-doctor files"): d for r, d in files.items()}, peers


def net_checks(peers: list[str] | None) -> list[Check]:
    from onemetal.doctor import mesh
    from onemetal.net import health
    from onemetal.net.mtu import VXLAN_OVERHEAD, learn_underlay_mtu
    from onemetal.net.host import NetHost

    try:
        host = NetHost.load()
        checks = mesh.peer_checks(mesh.peer_states(health.report(host)), peers)
        state, peers_file = host.ovs.read(host.cfg.net.bridge), host.mesh()
        enforced = host.max_mtu(peers_file)
        # the interface carrying the tunnels as it is now, whatever was configured or recorded
        underlay = (learn_underlay_mtu(host.reader, peers_file.local.tunnel_ip)
                    if peers_file.local else enforced + VXLAN_OVERHEAD)
        return checks + mesh.mtu_checks(enforced, underlay, list(state.interfaces.values()))
    except OneMetalError as exc:
        return [Check("mesh", FAIL, str(exc), "run `onemetal mesh sync` on the frontend")]


def run(files: dict[str, str], peers: list[str] | None) -> list[Check]:
    from onemetal import config
    from onemetal.doctor import libvirt_prereq, packages, remotes, sudo_rules
    from onemetal.storage import doctor as storage_doctor

    cfg = config.load()
    checks = [remotes.compare(REMOTE_DIR, files), *packages.run(), *sudo_rules.run()]
    checks += net_checks(peers)
    checks += storage_doctor.run(cfg.storage)
    return checks + libvirt_prereq.run(cfg.vmm.uri, min(cfg.vmm.call_timeout, LIBVIRT_TIMEOUT))


def entry(args: list[str], stdin: TextIO) -> str:
    if args:
        raise InputError(f"takes no arguments, got {' '.join(args)!r}", "host-doctor")
    return dumps(run(*request(stdin.read())))
