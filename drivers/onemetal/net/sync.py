"""`onemetal mesh sync|plan` on the frontend: push the host pool to every host, which converges its tunnels.

Members are the hosts of the pool (from the API, or a host list for
bootstrapping) except OFFLINE ones; a DISABLED host keeps its VMs running, so it
stays in the mesh. Each member's tunnel address is its TUNNEL_IP attribute,
else its name resolved here. Hosts are reached over SSH like oned does and run
the `mesh-peers` entry from their copy of the remotes.
"""

from __future__ import annotations

import base64
import socket
from concurrent.futures import ThreadPoolExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Sequence

from lxml import etree

from onemetal.errors import InputError, OneMetalError
from onemetal.opennebula import values
from onemetal.opennebula.resources import Host
from onemetal.record import replace, value
from onemetal.run import SshRunner

OFFLINE = 8
if TYPE_CHECKING:
    ResolveFn = Callable[[str], str]


def resolve(name: str) -> str:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise InputError(f"no TUNNEL_IP and the name does not resolve ({exc.strerror})",
                         f"HOST[NAME={name}]/TUNNEL_IP") from None
    return str(infos[0][4][0])


def members(hosts: Sequence[Host], resolver: ResolveFn = resolve) -> tuple[Host, ...]:
    """Pure but for the resolver: the mesh members, each with TUNNEL_IP set."""
    out = []
    for host in hosts:
        if host.state == OFFLINE:
            continue
        tunnel_ip = host.template.get("TUNNEL_IP") or resolver(host.name)
        values.ip(tunnel_ip, f"HOST[NAME={host.name}]/TUNNEL_IP", 4)
        out.append(replace(host, template={**host.template, "TUNNEL_IP": tunnel_ip}))
    return tuple(out)


def parse_host_list(lines: Sequence[str], source: str) -> tuple[Host, ...]:
    """`name [tunnel_ip]` per line, '#' comments: the pool for bootstrapping without the API."""
    hosts = []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        field = f"{source}:{number}"
        if len(words) > 2:
            raise InputError("expected `name [tunnel_ip]`", field)
        template = {"TUNNEL_IP": values.ip(words[1], field, 4)} if len(words) == 2 else {}
        hosts.append(Host(id=len(hosts), name=values.name(words[0], field), state=2,
                          cluster_id=0, im_mad=None, vm_mad=None, template=template))
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise InputError("a host is listed twice", source)
    return tuple(hosts)


def pool_xml(hosts: Sequence[Host]) -> str:
    root = etree.Element("HOST_POOL")
    for host in hosts:
        elem = etree.SubElement(root, "HOST")
        for tag, value in (("ID", host.id), ("NAME", host.name), ("STATE", host.state)):
            etree.SubElement(elem, tag).text = str(value)
        template = etree.SubElement(elem, "TEMPLATE")
        etree.SubElement(template, "TUNNEL_IP").text = host.template["TUNNEL_IP"]
    return etree.tostring(root, encoding="unicode")


@value
class HostResult:
    host: str
    ok: bool
    lines: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.ok and "CHANGED=YES" in (self.lines[0] if self.lines else "")


def push(hosts: Sequence[Host], connect: Callable[[str], SshRunner], *, dry_run: bool,
         parallel: int = 8) -> list[HostResult]:
    """Send the pool to every member; a host that fails does not stop the others."""
    payload = base64.b64encode(pool_xml(hosts).encode()).decode("ascii")
    args_tail = ["--dry-run"] if dry_run else []

    def one(host: Host) -> HostResult:
        try:
            result = connect(host.name).run_entry("mesh-peers", [host.name, *args_tail],
                                                  input=payload)
            return HostResult(host.name, True, tuple(result.stdout.strip().splitlines()))
        except OneMetalError as exc:
            return HostResult(host.name, False, (str(exc),))

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return list(pool.map(one, hosts))
