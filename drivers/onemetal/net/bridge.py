"""The mesh bridge on one host: desired ports (tunnels, VM ports) and flows, converged in two steps.

Step 1 is one OVSDB transaction (bridge, tunnel and VM ports, ownership in
external_ids); step 2 is one OpenFlow bundle. Both are diffs against what is
there, so a run with nothing to change writes nothing, and a run killed between
the two steps is finished by the next one. The caller holds the host's net lock.

A change is scoped: the mesh (tunnels and the shared flows) is always brought to
the wanted state, VM ports only for the VM the action is about. Ports of other
VMs are never touched, except ours whose device is gone, which are swept. A port a NIC claims (net/targets.py) is checked
against the state read before any command. The conntrack zone of a VM port (its
ofport) is flushed when the port is added and when it goes, so a later port with
the same number starts with no connections.
"""

from __future__ import annotations

import ipaddress
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Union

from onemetal.config import NetConfig
from onemetal.errors import ConfigError
from onemetal.net import pipeline
from onemetal.net.antispoof import Guard
from onemetal.net.openflow import SHARED, FlowTable, by_cookie, group_of, plan_flows
from onemetal.net.ovsdb import BridgeState, Interface, OvsDb
from onemetal.net.secgroups import OPEN, Filter
from onemetal.net.targets import (K_NIC, K_OWNER, K_ROLE, K_VM, Claim, check_ports, check_roles,
                                  owned_by)
from onemetal.reconcile import OWNER, Plan, diff
from onemetal.record import field, value

DATAPATHS = ("system", "netdev")


@value
class TunnelSpec:
    peer: str
    remote_ip: str
    dst_port: int
    bfd_ms: int  # 0: BFD off

    def __str__(self) -> str:
        bfd = f", bfd {self.bfd_ms} ms" if self.bfd_ms else ""
        return f"vxlan to {self.peer} ({self.remote_ip}:{self.dst_port}{bfd})"


@value
class VmPortSpec:
    vm_id: int
    nic_id: int
    mac: str
    vni: int
    mtu: int
    internal: bool = False  # an OVS internal port: the host's own address on a vnet (NAT gateway)

    def __str__(self) -> str:
        owner = f"gateway of vnet {self.nic_id}" if self.internal else f"VM {self.vm_id} NIC {self.nic_id}"
        return f"{owner} ({self.mac}, VNI {self.vni}, MTU {self.mtu})"


if TYPE_CHECKING:
    PortSpec = Union[TunnelSpec, VmPortSpec]


def tunnel_name(remote_ip: str) -> str:
    """vx + the peer's IPv4 address in hex: unique per peer, and within the 15 characters of a device."""
    return "vx" + ipaddress.IPv4Address(remote_ip).packed.hex()


def tunnel_spec(iface: Interface) -> TunnelSpec | None:
    ids = iface.external_ids
    if ids.get(K_OWNER) != OWNER or ids.get(K_ROLE) != "tunnel":
        return None
    bfd_ms = int(iface.bfd.get("min_tx", "0")) if iface.bfd.get("enable") == "true" else 0
    return TunnelSpec(peer=ids.get(f"{OWNER}-peer", ""), remote_ip=iface.options.get("remote_ip", ""),
                      dst_port=int(iface.options.get("dst_port", "4789")), bfd_ms=bfd_ms)


def vm_port_spec(iface: Interface) -> VmPortSpec | None:
    ids = iface.external_ids
    if ids.get(K_OWNER) != OWNER or ids.get(K_ROLE) != "vm":
        return None
    try:
        return VmPortSpec(vm_id=int(ids[K_VM]), nic_id=int(ids[K_NIC]),
                          mac=ids[f"{OWNER}-mac"], vni=int(ids[f"{OWNER}-vni"]),
                          mtu=iface.mtu_request or 0, internal=iface.type == "internal")
    except (KeyError, ValueError):
        return None  # tagged by hand or half-written: shown as a change, rewritten


def _owned(state: BridgeState) -> dict[str, PortSpec]:
    out: dict[str, PortSpec] = {}
    for name, iface in state.interfaces.items():
        spec = tunnel_spec(iface) or vm_port_spec(iface)
        if spec is not None:
            out[name] = spec
    return out


def _stale_vm_ports(state: BridgeState) -> frozenset[str]:
    """Our VM ports whose device is gone (VM destroyed without `clean`). The kernel datapath
    reports an error and no ofport; the userspace one keeps the ofport and says nothing."""
    return frozenset(n for n, i in state.interfaces.items()
                     if (spec := vm_port_spec(i)) and not spec.internal
                     and ((i.ofport < 0 and i.error) or not device_exists(n)))


def bridge_commands(state: BridgeState, net: NetConfig) -> list[list[str]]:
    if net.datapath not in DATAPATHS:
        raise ConfigError(f"{net.datapath!r} is not one of {', '.join(DATAPATHS)}", "net.datapath")
    settings = [f"datapath_type={net.datapath}", "fail_mode=secure",
                f"external_ids:{K_OWNER}={OWNER}"]
    if not state.exists:
        # secure: with no flows (a restarted ovs-vswitchd) the bridge drops instead of
        # falling back to NORMAL, which in a full mesh is a broadcast storm.
        return [["add-br", state.name], ["set", "bridge", state.name, *settings]]
    if (state.datapath_type or "system") != net.datapath:  # OVS leaves "system" empty
        raise ConfigError(f"bridge {state.name} exists with datapath {state.datapath_type!r}, "
                          f"not {net.datapath!r}", "net.datapath")
    if state.fail_mode != "secure" or state.external_ids.get(K_OWNER) != OWNER:
        return [["set", "bridge", state.name, *settings[1:]]]
    return []


def _add_commands(bridge: str, name: str, spec: PortSpec) -> list[list[str]]:
    ids = [f"external_ids:{K_OWNER}={OWNER}"]
    if isinstance(spec, TunnelSpec):
        bfd = ([f"bfd:enable=true", f"bfd:min_tx={spec.bfd_ms}", f"bfd:min_rx={spec.bfd_ms}"]
               if spec.bfd_ms else ["bfd:enable=false"])
        return [["--may-exist", "add-port", bridge, name],
                ["set", "interface", name, "type=vxlan", f"options:remote_ip={spec.remote_ip}",
                 "options:key=flow", f"options:dst_port={spec.dst_port}", *bfd, *ids,
                 f"external_ids:{K_ROLE}=tunnel", f"external_ids:{OWNER}-peer={spec.peer}"]]
    internal = ["type=internal", f'mac="{spec.mac}"'] if spec.internal else []
    return [["--may-exist", "add-port", bridge, name],
            ["set", "interface", name, *internal, f"mtu_request={spec.mtu}", *ids,
             f"external_ids:{K_ROLE}=vm", f"external_ids:{K_VM}={spec.vm_id}",
             f"external_ids:{K_NIC}={spec.nic_id}", f"external_ids:{OWNER}-mac={spec.mac}",
             f"external_ids:{OWNER}-vni={spec.vni}"]]


def port_commands(bridge: str, plan: Plan[str, PortSpec]) -> list[list[str]]:
    commands = [["--if-exists", "del-port", bridge, name] for name in sorted(plan.remove)]
    for name, spec in sorted(plan.add.items()):
        commands += _add_commands(bridge, name, spec)
    for name, (_, spec) in sorted(plan.change.items()):
        commands += _add_commands(bridge, name, spec)
    return commands


@value
class Request:
    """What one action wants of the bridge; tunnels None: leave the mesh as it is."""
    tunnels: Mapping[str, TunnelSpec] | None
    vm_ports: Mapping[str, VmPortSpec] = field(default_factory=dict)
    vm_scope: frozenset[str] = frozenset()   # VM ports this action decides (wanted or removed)
    filters: Mapping[str, Filter] = field(default_factory=dict)
    guards: Mapping[str, Guard] = field(default_factory=dict)  # the addresses each port may use
    claims: Mapping[str, Claim] = field(default_factory=dict)  # ports a VM's NICs ask for
    on_datapath: frozenset[str] = frozenset()  # claimed devices enslaved to ovs-system
    forget_macs: frozenset[str] = frozenset()
    internal_scope: bool = False  # decide every internal port of ours (the gateway's vnets)


@value
class Outcome:
    ports: Plan[str, PortSpec]
    flows: Plan[int, object] | None
    bridge_created: bool
    replaced: frozenset[int] = frozenset()  # groups whose flows went whole (see _removal)

    def __bool__(self) -> bool:
        return bool(self.ports) or bool(self.flows) or self.bridge_created

    def lines(self) -> list[str]:
        out = self.ports.lines()
        if self.replaced:
            ofports = ", ".join(map(str, sorted(self.replaced - {SHARED})))
            shared = len(self.flows.add) if self.flows else 0
            out.append(f"flows: those of ofport {ofports} removed, the {shared} shared ones rewritten")
        elif self.flows:
            out.append(f"flows: {len(self.flows.add)} to add, {len(self.flows.remove)} to remove")
        return out


def _flow_inputs(state: BridgeState, request: Request) -> tuple[
        list[pipeline.VmPort], list[pipeline.TunnelPortState], frozenset[int]]:
    vm_ports, tunnels, scope = [], [], {SHARED}
    for name, iface in state.interfaces.items():
        if iface.ofport <= 0:
            continue
        if tunnel_spec(iface):
            tunnels.append(pipeline.TunnelPortState(iface.ofport, name))
            scope.add(iface.ofport)
        spec = vm_port_spec(iface)
        if spec:
            # A VM port without its guard may use no address (closed, never open).
            guard = None if spec.internal else request.guards.get(name, Guard(spec.mac))
            vm_ports.append(pipeline.VmPort(iface.ofport, name, spec.mac, spec.vni,
                                            request.filters.get(name, OPEN), guard))
            if name in request.vm_scope:
                scope.add(iface.ofport)
    return vm_ports, tunnels, frozenset(scope)


def converge(ovs: OvsDb, flows: FlowTable, net: NetConfig, request: Request,
             dry_run: bool = False) -> Outcome:
    state = ovs.read(net.bridge)
    created = not state.exists
    if created and request.tunnels is None and not request.vm_ports:
        return Outcome(diff(f"ports@{net.bridge}", {}, {}), None, False)  # nothing to remove
    check_ports(state, request.claims, request.on_datapath)
    bridge = bridge_commands(state, net)
    # A claimed port is only ever removed when OVSDB says it is the claimant's.
    scope = ((request.vm_scope - set(request.claims)) | set(owned_by(state, request.claims))
             | _stale_vm_ports(state))
    if request.internal_scope:
        scope |= {n for n, i in state.interfaces.items()
                  if (spec := vm_port_spec(i)) is not None and spec.internal}
    mesh = request.tunnels is not None
    have = {n: s for n, s in _owned(state).items()
            if (mesh and isinstance(s, TunnelSpec)) or n in scope}
    ports = diff(f"ports@{net.bridge}", {**(request.tunnels or {}), **request.vm_ports}, have)
    check_roles(state, {**{n: _role(s) for n, s in ports.add.items()},
                        **{n: _role(new) for n, (_, new) in ports.change.items()}})
    commands = bridge + port_commands(net.bridge, ports)
    if dry_run:
        return Outcome(ports, None, created)
    leaving = _zones(state, ports.remove)
    before = state
    if commands:
        ovs.transact(commands)
        state = _after(ovs, state, ports, bool(bridge))
    flows.flush_zones(_zones(state, ports.add))  # before its flows let traffic in
    vm_ports, tunnels, scope_groups = _flow_inputs(state, request)
    mine = [p for p in vm_ports if p.name in request.vm_scope]
    want = pipeline.shared_flows(vm_ports, tunnels, net.mac_age)
    if not mine and _removal(request, ports, bool(bridge)):
        return _removed(flows, before, ports, want, request.forget_macs, leaving)
    for tunnel in tunnels:
        want += pipeline.tunnel_flows(tunnel)
    for port in mine:
        want += pipeline.port_flows(port)
    have_cookies = flows.cookies()
    present = {i.ofport for i in state.interfaces.values() if i.ofport > 0}
    orphans = frozenset(g for g in map(group_of, have_cookies) if g != SHARED and g not in present)
    flow_plan = plan_flows(net.bridge, by_cookie(want), have_cookies, scope_groups | orphans)
    if flow_plan or request.forget_macs:
        flows.apply(flow_plan, request.forget_macs)  # type: ignore[arg-type]
    # After the bundle, so no flow of the port is left to commit into the zone again. A port
    # whose device vanished has no ofport left; its number survives in its flows' cookies.
    flows.flush_zones(leaving | orphans)
    return Outcome(ports, flow_plan, created)


def _removal(request: Request, ports: Plan[str, PortSpec], bridge_changed: bool) -> bool:
    """An action that only takes ports away (clean): what it leaves is known without a dump."""
    return (request.tunnels is None and not request.vm_ports and not bridge_changed
            and bool(ports.remove) and not ports.add and not ports.change)


def _removed(flows: FlowTable, before: BridgeState, ports: Plan[str, PortSpec],
             shared: list[pipeline.Flow], forget_macs: frozenset[str],
             leaving: frozenset[int]) -> Outcome:
    """The removed ports' flows go by their group, whatever they were; the shared ones (which
    name the VM ports of each VNI) are rewritten whole, so no `dump-flows` is needed. Flows of
    a port whose device vanished without an ofport are left to the next pre or post to sweep."""
    groups = frozenset({SHARED} | {i.ofport for n in ports.remove
                                   if (i := before.interfaces.get(n)) is not None and i.ofport > 0})
    plan = plan_flows(before.name, by_cookie(shared), frozenset(), frozenset())
    flows.apply(plan, forget_macs, drop_groups=groups)
    flows.flush_zones(leaving)
    return Outcome(ports, plan, False, groups)


def _after(ovs: OvsDb, state: BridgeState, ports: Plan[str, PortSpec],
           bridge_changed: bool) -> BridgeState:
    """The bridge after the transaction. New or changed ports are read back (their ofport and
    columns come from OVSDB); a transaction that only removed ports left what was read
    minus them, so no second read is needed (clean, a peer leaving)."""
    if bridge_changed or ports.add or ports.change:
        return ovs.read(state.name)
    return BridgeState(name=state.name, exists=state.exists, datapath_type=state.datapath_type,
                       fail_mode=state.fail_mode, external_ids=state.external_ids,
                       interfaces={n: i for n, i in state.interfaces.items()
                                   if n not in ports.remove},
                       elsewhere=state.elsewhere)


def _zones(state: BridgeState, names: Mapping[str, object]) -> frozenset[int]:
    """The conntrack zones (ofports) of the VM ports among `names` (tunnels and gateways have none)."""
    return frozenset(i.ofport for n in names if (i := state.interfaces.get(n)) is not None
                     and i.ofport > 0 and (spec := vm_port_spec(i)) is not None
                     and not spec.internal)


def _role(spec: PortSpec) -> str:
    if isinstance(spec, TunnelSpec):
        return "tunnel"
    return "internal" if spec.internal else "vm"


def device_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/sys/class/net", name))
