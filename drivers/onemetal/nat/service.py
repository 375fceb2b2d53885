"""onenat's operations: the store, the VM's NICs from the API, and the mark left on the VM.

The store is the truth; the VM's USER_TEMPLATE only shows the operator which EIP a
VM has (EIP_ADDRESS, EIP_PRIVATE_IP). Every change here is followed by a gateway
sync; if that fails the store keeps the change and the next `onenat sync` applies it.
"""

from __future__ import annotations

from typing import Any

from onemetal.errors import InputError
from onemetal.nat.model import Mapping, Owner, ipv4
from onemetal.nat.store import Store
from onemetal.opennebula import client
from onemetal.opennebula.resources import VmSummary

ATTRIBUTES = ("EIP_ADDRESS", "EIP_PRIVATE_IP")


def nat_nic(store: Store, vm: VmSummary, nic_id: int | None) -> tuple[int, str, int]:
    """(NIC_ID, IP, NETWORK_ID) of the VM's NIC on a NATed vnet (the given one, else the first)."""
    natted = {v.vnet_id for v in store.state().vnets}
    vm_id = vm.id
    chosen = [n for n in vm.nics if (nic_id is None or n[0] == nic_id)]
    if nic_id is not None and not chosen:
        raise InputError(f"VM {vm_id} has no NIC {nic_id}", "nic")
    on_nat = [n for n in chosen if n[2] in natted]
    if not on_nat:
        which = f"NIC {nic_id}" if nic_id is not None else "no NIC"
        raise InputError(f"VM {vm_id}: {which} on a NATed vnet (NATed: "
                         f"{', '.join(map(str, sorted(natted))) or 'none'})", "nic")
    found_id, ip, network = on_nat[0]
    if not ip:
        raise InputError(f"VM {vm_id} NIC {found_id} has no IPv4 address", "nic")
    return found_id, ipv4(ip, f"VM[ID={vm_id}]/NIC[NIC_ID={found_id}]/IP"), int(network)  # type: ignore[arg-type]


def map_vm(store: Store, server: Any, vm_id: int, nic_id: int | None = None,
           eip: str | None = None, pool: str | None = None) -> Mapping:
    """The administrator's mapping: no group policy or quota, but the owner is recorded, so
    the EIP counts against the owner's quota for what the hooks may add."""
    vm = client.vm_info(server, vm_id)
    found_id, ip, network = nat_nic(store, vm, nic_id)
    return store.map(vm_id, found_id, ip, network, eip=eip, pool=pool,
                     owner=Owner(vm.uid, vm.gid))


def unmap_vm(store: Store, *, vm_id: int | None = None,
             nic_id: int | None = None, eip: str | None = None) -> list[Mapping]:
    removed = store.unmap(eip=eip, vm_id=vm_id, nic_id=nic_id)
    if not removed:
        what = f"EIP {eip}" if eip else f"VM {vm_id}" + (f" NIC {nic_id}" if nic_id is not None else "")
        raise InputError(f"{what} has no mapping", "eip" if eip else "vm")
    return removed


def mark(store: Store, server: Any) -> list[str]:
    """Bring the VMs' USER_TEMPLATE in line with the store: EIP_ADDRESS/EIP_PRIVATE_IP on mapped
    VMs, removed from released ones (merged: nothing else of the template is touched). What
    fails stays pending for the next `onenat sync`."""
    lines = []
    for m in store.unmarked():
        client.set_user_attributes(server, m.vm_id, {"EIP_ADDRESS": m.eip,
                                                     "EIP_PRIVATE_IP": m.private_ip})
        store.set_marked(m.eip)
        lines.append(f"VM {m.vm_id}: USER_TEMPLATE EIP_ADDRESS={m.eip}")
    for vm_id in store.pending_unmarks():
        try:
            client.set_user_attributes(server, vm_id, dict.fromkeys(ATTRIBUTES))
        except client.NoSuchObject:
            pass  # a VM that is gone keeps no mark
        store.unmark_done(vm_id)
        lines.append(f"VM {vm_id}: USER_TEMPLATE EIP_ADDRESS removed")
    return lines
