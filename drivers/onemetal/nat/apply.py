"""Host entry `nat-apply [--dry-run]` on the NAT gateway: make the host match the pushed NAT state.

stdin: the store's state as JSON (the frontend's `onenat sync`). In order, each step
a diff against what the host has, writing only what differs:
  1. each NATed vnet's gateway address on an internal port of the mesh bridge, in
     the vnet's VNI (the VMs' default route);
  2. the Elastic IPs' private secondary addresses on the gateway's interface,
     labelled <interface>:om so that only ours are ever removed;
  3. IPv4 forwarding (and IPv6 off on the gateway ports, which step 1 does);
  4. the nft table `ip onemetal`, replaced in one `nft -f`, read back and compared;
     its forward chain fences off the mesh hosts (this host's peer list), link-local,
     VXLAN and nat.blocked_networks (nat/fence.py);
  5. conntrack entries of mappings and forwards the table no longer has, deleted
     with filters, so an open flow to a retired mapping stops and new ones go to
     the new target.
A push older than the last one applied is refused before any of it (nat/generation.py).
Commands that change the host run through `sudo -n` as oneadmin (see NetHost.runner);
onemetal's sudoers fragment allows the address, sysctl and conntrack calls.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal.errors import InputError, OneMetalError
from onemetal.nat import fence, generation
from onemetal.nat.fence import Fence
from onemetal.nat.filters import GATEWAY_PORT_PREFIX
from onemetal.nat.model import Address, Forward, Mapping, NatState, Vnet, ipv4
from onemetal.nat.render import TableContent, compare, desired, render, settled_read
from onemetal.net.bridge import Request, VmPortSpec, converge
from onemetal.net.host import NetHost
from onemetal.net.ipjson import addr_show
from onemetal.opennebula import values
from onemetal.record import replace
from onemetal.run import Runner, quoted

LABEL = "om"


def parse_state(text: str) -> tuple[NatState, str, int, Fence]:
    """The pushed JSON, every value checked again (the host trusts no input), its store
    generation, and the fence without the hosts (the gateway knows those itself)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        pushed = generation.parse(data)
        state = NatState(
            vnets=tuple(Vnet.checked(v["vnet_id"], v["subnet"], v["gateway"], v["snat_ip"], v["vni"])
                        for v in data["vnets"]),
            addresses=tuple(Address(ipv4(a["eip"], "eip"), ipv4(a["private_ip"], "private_ip"),
                                    values.name(a["pool"], "pool")) for a in data["addresses"]),
            mappings=tuple(Mapping(ipv4(m["eip"], "eip"), ipv4(m["private_ip"], "private_ip"),
                                   int(m["vm_id"]), int(m["nic_id"]), ipv4(m["vm_ip"], "vm_ip"),
                                   int(m["vnet_id"])) for m in data["mappings"]),
            forwards=tuple(Forward.checked(f["private_ip"], f["port"], f["protocol"], f["vm_ip"],
                                           f["vm_port"]) for f in data["forwards"]))
        interface = values.name(data["interface"], "interface", 15)
        outside = Fence(blocked=fence.blocked_networks(data["blocked_networks"],
                                                       "stdin/blocked_networks"),
                        allowed=fence.allowed(data["allowed"], "stdin/allowed"))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not the NAT state onenat sends ({exc})", "stdin") from None
    return state, interface, pushed, outside


def gateway_port(vnet: Vnet) -> str:
    return f"{GATEWAY_PORT_PREFIX}{vnet.vnet_id}"


def gateway_mac(vnet: Vnet) -> str:
    """Stable per vnet, locally administered: 02:6f:6d + the vnet id's low 24 bits."""
    low = vnet.vnet_id & 0xFFFFFF
    return f"02:6f:6d:{low >> 16:02x}:{(low >> 8) & 0xff:02x}:{low & 0xff:02x}"


def _addresses(runner: Runner, device: str) -> list[dict[str, object]]:
    return [a for iface in addr_show(runner, "-4", device=device) or []
            for a in iface.get("addr_info", [])]  # type: ignore[attr-defined]


def _gateway_ports(host: NetHost, state: NatState, dry_run: bool) -> list[str]:
    net = host.cfg.net
    mtu = host.max_mtu(host.mesh())
    want = {gateway_port(v): VmPortSpec(vm_id=-1, nic_id=v.vnet_id, mac=gateway_mac(v), vni=v.vni,
                                        mtu=mtu, internal=True) for v in state.vnets}
    outcome = converge(host.ovs, host.flows, net, Request(
        tunnels=None, vm_ports=want, vm_scope=frozenset(want), internal_scope=True),
        dry_run=dry_run)
    lines = [f"gateway ports: {line}" for line in outcome.ports.lines()]
    for vnet in state.vnets:
        port, prefix = gateway_port(vnet), vnet.subnet.split("/")[1]
        lines += _no_ipv6(host.runner, port, dry_run)
        have = {f"{a['local']}/{a['prefixlen']}" for a in _addresses(host.reader, port)}
        if f"{vnet.gateway}/{prefix}" in have:
            continue
        lines.append(f"gateway address: + {vnet.gateway}/{prefix} on {port}")
        if not dry_run:
            host.runner.run(["ip", "addr", "replace", f"{vnet.gateway}/{prefix}", "dev", port])
            host.runner.run(["ip", "link", "set", port, "up"])
            if net.datapath == "netdev":
                # The userspace datapath forwards the kernel's partial checksums as they are.
                host.runner.run(["ethtool", "-K", port, "tx", "off"], check=False)
    return lines


def _sysctl(runner: Runner, key: str, want: str, dry_run: bool) -> bool:
    """Set a kernel setting unless it already holds `want` (read without sudo, so an apply
    with nothing to change writes nothing); whether it had to change."""
    with open(f"/proc/sys/{key.replace('.', '/')}", encoding="ascii") as f:
        if f.read().strip() == want:
            return False
    if not dry_run:
        runner.run(["sysctl", "-q", "-w", f"{key}={want}"])
    return True


def _no_ipv6(runner: Runner, port: str, dry_run: bool) -> list[str]:
    """IPv6 off on a gateway port, before it is up: the table filters IPv4 only, so a
    link-local address there would let a VM reach the host's services listening on ::."""
    try:
        changed = _sysctl(runner, f"net.ipv6.conf.{port}.disable_ipv6", "1", dry_run)
    except FileNotFoundError:
        if not os.path.isdir("/proc/sys/net/ipv6/conf"):
            return []   # no IPv6 on this host at all
        if not dry_run:
            raise
        changed = True  # the port does not exist yet: a dry run shows what the apply will do
    return [f"gateway ports: IPv6 off on {port}"] if changed else []


def _secondary_addresses(host: NetHost, interface: str, state: NatState,
                         dry_run: bool) -> list[str]:
    label = f"{interface}:{LABEL}"
    runner = host.runner
    have = {str(a["local"]) for a in _addresses(host.reader, interface) if a.get("label") == label}
    want = {a.private_ip for a in state.addresses}
    lines = [f"secondary addresses: + {ip} on {interface}" for ip in sorted(want - have)]
    lines += [f"secondary addresses: - {ip} on {interface}" for ip in sorted(have - want)]
    if not dry_run:
        for ip in sorted(want - have):
            runner.run(["ip", "addr", "add", f"{ip}/32", "dev", interface, "label", label])
        for ip in sorted(have - want):
            # With the label the kernel deletes the address only if it is ours.
            runner.run(["ip", "addr", "del", f"{ip}/32", "dev", interface, "label", label])
    return lines


def _forwarding(runner: Runner, dry_run: bool) -> list[str]:
    return ["ip_forward: 0 -> 1"] if _sysctl(runner, "net.ipv4.ip_forward", "1", dry_run) else []


def _table(runner: Runner) -> TableContent:
    """The table as two reads in a row list it: a read while the kernel still changes a
    map's hash (right after a big load) lists elements twice or misses some."""
    def listing() -> str:
        out = runner.run(["nft", "-j", "list", "table", "ip", "onemetal"], check=False)
        return out.stdout if out.returncode == 0 else ""
    return settled_read(listing)[0]


def conntrack_filters(want: TableContent, have: TableContent) -> list[list[str]]:
    """conntrack -D filters for exactly the flows of mappings and forwards that went away."""
    filters = []
    for private_ip, vm_ip in sorted(have.eip_to_vm - want.eip_to_vm):
        filters.append(["-d", private_ip])                  # inbound, DNATed to the old VM
        filters.append(["-s", vm_ip, "--reply-dst", private_ip])  # outbound, SNATed to the EIP
    for private_ip, proto, port, _, _ in sorted(have.forwards - want.forwards):
        filters.append(["-p", proto, "-d", private_ip, "--dport", str(port)])
    return filters


class ConntrackFailed(OneMetalError):
    """conntrack -D failed for another reason than finding nothing to delete."""


# What conntrack 1.4.7 prints, exiting 1, when no entry matched the filter: nothing to do.
_NONE_DELETED = "0 flow entries have been deleted."


def conntrack_delete(runner: Runner, words: list[str]) -> str:
    """Delete the entries matching one filter; its report line (`N flow entries have been
    deleted.`). Any failure but "none matched" fails the action naming command and stderr."""
    argv = ["conntrack", "-D", *words]
    result = runner.run(argv, check=False)
    said = [line.partition("(conntrack-tools): ")[2] or line
            for line in result.stderr.strip().splitlines()]
    if result.returncode == 0 or (result.returncode == 1 and said[-1:] == [_NONE_DELETED]):
        return said[-1] if said else "done"
    # conntrack says why on its first line and "Try `conntrack -h'" on the last: keep both.
    raise ConntrackFailed(f"`{quoted(argv)}` failed with exit code {result.returncode}: "
                          f"{' '.join(said) or 'no output on stderr'}", "conntrack")


def _forget_flows(runner: Runner, want: TableContent, have: TableContent) -> list[str]:
    lines, failed = [], []
    for words in conntrack_filters(want, have):
        try:
            lines.append(f"conntrack -D {' '.join(words)}: {conntrack_delete(runner, words)}")
        except ConntrackFailed as exc:  # the other filters still run
            failed.append(str(exc))
    if failed:
        raise OneMetalError(f"the table is applied, but {'; '.join(failed)}")
    return lines


def _fence(host: NetHost, outside: Fence) -> Fence:
    """The pushed fence with every mesh host's tunnel address, this one's too."""
    mesh = host.mesh()
    hosts = frozenset(p.tunnel_ip for p in (*mesh.peers, *([mesh.local] if mesh.local else [])))
    return replace(outside, hosts=hosts, vxlan_port=host.cfg.net.vxlan_port)


def _nft(runner: Runner, state: NatState, outside: Fence, dry_run: bool) -> list[str]:
    want, have = desired(state, outside), _table(runner)
    changes = compare(want, have)
    lines = [f"nft: {c}" for c in changes]
    if changes and not dry_run:
        runner.run(["nft", "-f", "-"], input=render(state, outside))
        after = compare(want, _table(runner))
        if after:
            raise OneMetalError(f"the table read back differs: {'; '.join(after)}", "nft")
        lines += _forget_flows(runner, want, have)
    return lines


def entry(args: Sequence[str], stdin: TextIO) -> str:
    dry_run = "--dry-run" in args
    if [a for a in args if a != "--dry-run"]:
        raise InputError("expected no argument but --dry-run", "argv")
    state, interface, pushed, outside = parse_state(stdin.read())
    host = NetHost.load()
    with host.lock():
        last = generation.applied(host.state_dir)
        generation.check(pushed, last)
        if not dry_run:
            generation.record(host.state_dir, pushed, last)
        lines = _gateway_ports(host, state, dry_run)
        lines += _secondary_addresses(host, interface, state, dry_run)
        lines += _forwarding(host.runner, dry_run)
        lines += _nft(host.runner, state, _fence(host, outside), dry_run)
    return "\n".join([f"CHANGED={'YES' if lines else 'NO'}", *lines])
