"""The mesh bridge's OpenFlow pipeline, rendered from the ports on it (pure).

Why OpenFlow and not NORMAL: a tunnel port with key=flow needs the VNI set per
packet, and OVS port tags hold 12 bits where a VNI holds 24. So each VM port is
"tagged" by its classification flow, which loads the vnet's VNI into tun_id;
from then on every lookup (learned MACs, flooding) is keyed by that VNI, and
vnets sharing the bridge never see each other's frames.

Tables:
  0  CLASSIFY  VM port + its MAC (and its addresses: net/antispoof.py) -> tun_id = VNI,
               reg0 = 0 (local), to 10; tunnel -> reg0 = 1 (from the mesh), to 20 (BFD apart:
               OVS consumes it); anything else dropped
               (a spoofed source MAC or address, the bridge's own port).
  5  NEIGHBOUR a VM's neighbour solicitations and advertisements: target and link-layer
               options its own, then to 10.
  10 EGRESS    security groups of the sending VM: conntrack in the port's zone
  11             and its outbound whitelist; open ports go straight on.
  20 LEARN     learn(tun_id, source MAC -> reg1 = in_port) into table 30 (local
               entries above those learned from tunnels), then
               look the destination up (30) and forward (40). An address learned
               from a tunnel is only used for frames from local ports (reg0 = 0):
               split horizon, a frame from the mesh never goes back into it.
  30 MACS      learned entries (cookie LEARNED, idle timeout mac_age).
  40 FORWARD   reg1 = a VM port -> its ingress checks (60); reg1 = a tunnel ->
               output (local frames only); reg1 = 0 (unknown, broadcast) -> flood:
               local frames to the VNI's local ports and once to every peer,
               frames from the mesh to the VNI's local ports only.
  60 INGRESS   security groups of the receiving VM (conntrack, inbound whitelist),
  61             then output.

Loop-free by construction: the only flows that output to a tunnel match reg0 = 0,
and reg0 is 1 for every frame that came from a tunnel.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Sequence

from onemetal.net.antispoof import Guard, classify_flows, mac_only
from onemetal.net.openflow import LEARN_TABLE, LEARNED, SHARED, Flow
from onemetal.net.secgroups import CONJUNCTION_PRIORITY, Conjunction, Filter, conjunction_flows
from onemetal.record import value

CLASSIFY, NEIGHBOUR, EGRESS, EGRESS_CT, LEARN, FORWARD, INGRESS, INGRESS_CT = (
    0, 5, 10, 11, 20, 40, 60, 61)
MACS = LEARN_TABLE
BFD_PORT = 3784
# Neighbour discovery (router/neighbour solicitation and advertisement) passes like ARP.
_ND_TYPES = (133, 134, 135, 136)


@value(order=True)
class VmPort:
    ofport: int
    name: str
    mac: str
    vni: int
    filter: Filter
    guard: Guard | None = None  # None: only the MAC is checked (an internal port of the host)


@value(order=True)
class TunnelPortState:
    ofport: int
    name: str


def shared_flows(vm_ports: Sequence[VmPort], tunnels: Sequence[TunnelPortState],
                 mac_age: int) -> list[Flow]:
    def learned(priority: int) -> str:
        return (f"table={MACS},cookie={LEARNED:#x},idle_timeout={mac_age},priority={priority},"
                "NXM_NX_TUN_ID[],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[]")
    into_reg1 = "load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15]"
    then = f"resubmit(,{MACS}),resubmit(,{FORWARD})"
    # A MAC seen on a local port outranks the same MAC seen through a tunnel: a VM that
    # migrated here is reached locally from its first frame, not through its old host.
    flows = [
        Flow(CLASSIFY, 0, "", "drop"),
        Flow(NEIGHBOUR, 0, "", "drop"),
        Flow(LEARN, 10, "reg0=0", f"learn({learned(100)},{into_reg1}),{then}"),
        Flow(LEARN, 10, "reg0=1", f"learn({learned(90)},reg0=0,{into_reg1}),{then}"),
        Flow(FORWARD, 0, "", "drop"),
    ]
    tunnel_out = ",".join(f"output:{t.ofport}" for t in sorted(tunnels))
    for vni in sorted({p.vni for p in vm_ports}):
        local = ",".join(f"load:{p.ofport}->NXM_NX_REG1[0..15],resubmit(,{INGRESS})"
                         for p in sorted(vm_ports) if p.vni == vni)
        flows.append(Flow(FORWARD, 10, f"reg0=1,reg1=0,tun_id={vni}", local or "drop"))
        flows.append(Flow(FORWARD, 10, f"reg0=0,reg1=0,tun_id={vni}",
                          ",".join(a for a in (tunnel_out, local) if a)))
    return flows


def tunnel_flows(tunnel: TunnelPortState) -> list[Flow]:
    t = tunnel.ofport
    # BFD control packets are consumed by OVS before any action runs; matching them on
    # their own keeps them out of the data counters of the flow below.
    return [Flow(CLASSIFY, 110, f"in_port={t},udp,tp_dst={BFD_PORT}", "drop", t),
            Flow(CLASSIFY, 100, f"in_port={t}", f"load:1->NXM_NX_REG0[],resubmit(,{LEARN})", t),
            Flow(FORWARD, 5, f"reg0=0,reg1={t}", f"output:{t}", t)]


def _stateful(port: int, table: int, ct_table: int, key: str, done: str,
              allowed: Iterable[str], conjunctions: Sequence[Conjunction] = ()) -> list[Flow]:
    """One direction of a filtered port: conntrack in the port's zone, then the whitelist:
    plain matches, and ports x networks as conjunctions (ports + networks flows, not their
    product), below the plain flows since a clause match may repeat a plain one."""
    flows = [Flow(table, 110, f"{key},icmp6,icmp_type={t}", done, port) for t in _ND_TYPES]
    flows += [Flow(table, 100, f"{key},{family}", f"ct(table={ct_table},zone={port})", port)
              for family in ("ip", "ipv6")]
    flows.append(Flow(table, 80, key, done, port))  # not IP: ARP and the like
    flows += [Flow(ct_table, 200, f"{key},ct_state=+trk+est", done, port),
              Flow(ct_table, 200, f"{key},ct_state=+trk+rel", done, port),
              Flow(ct_table, 190, f"{key},ct_state=+trk+inv", "drop", port),
              Flow(ct_table, 0, key, "drop", port)]
    commit = f"ct(commit,zone={port}),{done}"
    flows += [Flow(ct_table, 100, f"{key},ct_state=+trk+new,{m}", commit, port) for m in allowed]
    flows += [Flow(ct_table, CONJUNCTION_PRIORITY, f"{key},ct_state=+trk+new,{m}", actions, port)
              for m, actions in conjunction_flows(conjunctions, port, commit)]
    return flows


def port_flows(port: VmPort) -> list[Flow]:
    p = port.ofport
    egress_done, ingress_done = f"resubmit(,{LEARN})", f"output:{p}"
    guard = port.guard or mac_only(port.mac)
    flows = classify_flows(p, port.vni, guard, CLASSIFY, NEIGHBOUR, f"resubmit(,{EGRESS})")
    flows.append(Flow(FORWARD, 5, f"reg1={p}", f"resubmit(,{INGRESS})", p))
    if port.filter.open:
        return flows + [Flow(EGRESS, 100, f"in_port={p}", egress_done, p),
                        Flow(INGRESS, 100, f"reg1={p}", ingress_done, p)]
    # Replies are recognised only if both directions go through conntrack, so an
    # open direction of a filtered port still commits its connections.
    outbound = port.filter.outbound if port.filter.outbound is not None else ("ip", "ipv6")
    inbound = port.filter.inbound if port.filter.inbound is not None else ("ip", "ipv6")
    return (flows + _stateful(p, EGRESS, EGRESS_CT, f"in_port={p}", egress_done, outbound,
                              port.filter.outbound_conjunctions)
            + _stateful(p, INGRESS, INGRESS_CT, f"reg1={p}", ingress_done, inbound,
                        port.filter.inbound_conjunctions))
