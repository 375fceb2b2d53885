"""The VNM actions of ovswitch_vxlan_unicast: what oned runs on a host around each VM action.

pre     (before the VM starts; taps may not exist yet) mesh + shared flows, and
        the VM's ports whose device already exists (restore, attach);
post    <deploy_id> <host>: the VM's ports, which must exist now (libvirt plugged them);
clean   <host>: the VM's ports and flows go (only the NIC being detached, if any);
update_sg <deploy_id>, update_nic <deploy_id> <vnet_id>: the VM's ports again.
Every NIC is checked before anything changes: a bad one fails the action with
its field named and the bridge untouched. What a tenant wrote (TARGET names,
security group rules) is checked before the host lock is taken, so a hostile VM
never holds it; the devices being added and the ports' owners inside the lock.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Sequence, TextIO

from onemetal.errors import InputError
from onemetal.net.antispoof import Guard, guard, link_local, slaac
from onemetal.net.bridge import Outcome, Request, VmPortSpec, converge
from onemetal.net.host import NetHost
from onemetal.net.peers import Mesh
from onemetal.net.mtu import nic_mtu
from onemetal.net.secgroups import Filter, compile_filter
from onemetal.net.targets import (OVS_MASTER, Claim, canonical_port, check_device, check_names,
                                  claim_all)
from onemetal.net.vnet import MAX_VNI
from onemetal.opennebula import payload, values
from onemetal.opennebula.protocol import log
from onemetal.opennebula.vm import VM, Nic

VN_MAD = "ovswitch_vxlan_unicast"


def port_name(vm: VM, nic: Nic) -> str:
    return nic.target or canonical_port(vm.id, nic.nic_id)


def vni(nic: Nic, field: str) -> int:
    if nic.vlan_id is None:
        raise InputError("missing: the vnet needs VLAN_ID (or AUTOMATIC_VLAN_ID=YES); it is the "
                         "VXLAN VNI", f"{field}/VLAN_ID")
    if not 1 <= nic.vlan_id <= MAX_VNI:
        raise InputError(f"{nic.vlan_id} is out of range for a VNI (1..{MAX_VNI})",
                         f"{field}/VLAN_ID")
    return nic.vlan_id


def nic_spec(vm: VM, nic: Nic, bridge: str, maximum: int) -> VmPortSpec:
    """The port a NIC needs; raises InputError naming the field for anything wrong."""
    field = f"NIC[NIC_ID={nic.nic_id}]"
    if nic.mac is None:
        raise InputError("missing: every NIC needs a MAC", f"{field}/MAC")
    if nic.bridge != bridge:
        raise InputError(f"{nic.bridge!r} is not this host's mesh bridge {bridge!r} (onemetal.conf "
                         f"net.bridge); vnets of {VN_MAD} share it and are kept apart by VNI",
                         f"{field}/BRIDGE")
    return VmPortSpec(vm_id=vm.id, nic_id=nic.nic_id, mac=nic.mac, vni=vni(nic, field),
                      mtu=nic_mtu(nic, maximum, field))


def _read_vm(stdin: TextIO) -> VM:
    return VM.from_xml(payload.read_payload(stdin.read(), "stdin", root="VM"))


def own_nics(vm: VM) -> list[Nic]:
    """The NICs with a port of their own (an alias rides on its parent's)."""
    return [n for n in vm.nics_for(VN_MAD) if not n.alias]


def port_specs(host: NetHost, vm: VM, mesh: Mesh | None = None) -> dict[str, VmPortSpec]:
    """The VM's ports on this host by tap name, each NIC checked. The VMM takes the MTU for
    libvirt's <mtu> from here, so the guest, the tap and the OVS port agree."""
    maximum = host.max_mtu(mesh or host.mesh())
    return {port_name(vm, n): nic_spec(vm, n, host.cfg.net.bridge, maximum) for n in own_nics(vm)}


def leased_ip6s(nic: Nic) -> list[str]:
    """The NIC's IPv6 addresses oned vouches for. oned leases IP6 from the address range but
    keeps an IP6_GLOBAL, IP6_ULA or IP6_LINK the tenant wrote where the range sets none, so
    those count only as what oned derives: the MAC's EUI-64 behind a prefix, its link-local."""
    out = [nic.ip6] if nic.ip6 else []
    for key in ("IP6_GLOBAL", "IP6_ULA", "IP6_LINK"):
        raw = nic.attributes.get(key)
        if not raw or not nic.mac:
            continue
        address = values.ip(raw, key, 6)  # checked when the view was built
        if (address == link_local(nic.mac)) if key == "IP6_LINK" else slaac(address, nic.mac):
            out.append(address)
    return out


def nic_guard(vm: VM, nic: Nic) -> Guard:
    """The addresses the NIC's port may send from: its own and its same-vnet aliases'. IP
    checks are on unless FILTER_IP_SPOOFING=NO (a restricted attribute: only an admin sets
    it). VROUTER_IP is not taken: the tenant writes it; a virtual router needs that NO."""
    nics = (nic, *vm.aliases_of(nic))
    return guard(nic.mac or "", [n.ip for n in nics if n.ip],
                 [a for n in nics for a in leased_ip6s(n)], ip=nic.filter_ip_spoofing is not False)


def claims(vm: VM, nics: Sequence[Nic]) -> dict[str, Claim]:
    return claim_all((port_name(vm, n), Claim(vm.id, n.nic_id, (n.mac or "").lower())) for n in nics)


def _tenant_input(host: NetHost, vm: VM, nics: Sequence[Nic]) -> dict[str, Claim]:
    """The checks of what a tenant wrote that need no lock: TARGET names."""
    wanted = claims(vm, nics)
    check_names(wanted, host.cfg.net.bridge)
    return wanted


def _filters(host: NetHost, vm: VM) -> dict[str, Filter]:
    cap = host.cfg.net.max_flows_per_nic
    return {port_name(vm, n): compile_filter(vm.rules_for(n), cap, nic_id=n.nic_id)
            for n in own_nics(vm)}


def _ports(host: NetHost, vm: VM, require_devices: bool, filters: dict[str, Filter],
           wanted: dict[str, Claim]) -> Request:
    mesh = host.mesh()
    specs = port_specs(host, vm, mesh)
    # Under the lock, on exactly the devices this run adds: one that appears after a check
    # made earlier would go in unchecked.
    masters = {name: check_device(name, wanted[name], host.reader) for name in specs}
    missing = [name for name, master in masters.items() if master is None]
    if require_devices and missing:
        spec = specs[missing[0]]
        raise InputError(f"device {missing[0]} does not exist on this host (is the VM running?)",
                         f"NIC[NIC_ID={spec.nic_id}]/TARGET")
    return Request(tunnels=host.tunnels(mesh),
                   vm_ports={n: s for n, s in specs.items() if n not in missing},
                   vm_scope=frozenset(specs), filters=filters,
                   guards={port_name(vm, n): nic_guard(vm, n) for n in own_nics(vm)},
                   claims=wanted,
                   on_datapath=frozenset(n for n, m in masters.items() if m == OVS_MASTER))


def _report(action: str, outcome: Outcome) -> None:
    if outcome:
        log("INFO", action, "; ".join(outcome.lines()) or "bridge created")


def _converge(action: str, stdin: TextIO, require_devices: bool) -> None:
    vm = _read_vm(stdin)
    host = NetHost.load()
    filters = _filters(host, vm)
    wanted = _tenant_input(host, vm, own_nics(vm))
    with host.lock():
        request = _ports(host, vm, require_devices, filters, wanted)
        _report(action, converge(host.ovs, host.flows, host.cfg.net, request))


def _args(args: Sequence[str], names: Sequence[str]) -> list[str]:
    if len(args) != len(names):
        raise InputError(f"expected {len(names)} arguments ({' '.join(names) or 'none'}), "
                         f"got {len(args)}", "argv")
    return [values.text(a, f"argv[{i + 1}] ({n})") for i, (a, n) in enumerate(zip(args, names))]


def _action(name: str, arg_names: Sequence[str], require_devices: bool) -> Callable[
        [Sequence[str], TextIO], None]:
    def action(args: Sequence[str], stdin: TextIO) -> None:
        _args(args, arg_names)
        _converge(name, stdin, require_devices)
    action.__name__ = action.__qualname__ = name
    return action


pre = _action("pre", [], require_devices=False)
post = _action("post", ["deploy_id", "host"], require_devices=True)
update_sg = _action("update_sg", ["deploy_id"], require_devices=False)
update_nic = _action("update_nic", ["deploy_id", "vnet_id"], require_devices=False)


def clean(args: Sequence[str], stdin: TextIO) -> None:
    _args(args, ["host"])
    vm = _read_vm(stdin)
    nics = own_nics(vm)
    # A detach runs clean with the leaving NIC marked ATTACH=YES: only that one goes.
    leaving = [n for n in nics if n.attach] or nics
    host = NetHost.load()
    wanted = _tenant_input(host, vm, leaving)
    with host.lock():
        request = Request(tunnels=None, vm_scope=frozenset(wanted), claims=wanted,
                          forget_macs=frozenset(n.mac for n in leaving if n.mac))
        _report("clean", converge(host.ovs, host.flows, host.cfg.net, request))
