"""Mappings checked against the VMs that exist: what `onenat sync` releases before it pushes.

A lost DONE hook, or a NIC detached from a running VM, would otherwise leave a
mapping for good, and the next VM leased that private IP (maybe another tenant's)
would receive the EIP's traffic. oned's VM pool is the truth for which VMs and NICs
exist: a mapping whose VM is not in it (DONE, or purged), or whose VM no longer has
that NIC with that IP on that vnet, is stale (a NIC detached and attached again can
reuse the id and the IP on another vnet, whose subnet the mapping's SNAT does not cover). VMs that are powered off, stopped or undeployed
keep their NICs and so their EIPs, as at RUNNING again.
"""

from __future__ import annotations

from typing import Any, Mapping as MappingType, Sequence

from onemetal.nat.model import Mapping
from onemetal.nat.store import Store
from onemetal.opennebula import client
from onemetal.opennebula.resources import VmSummary


def stale(mappings: Sequence[Mapping], live: MappingType[int, VmSummary]) -> list[tuple[Mapping, str]]:
    """Each mapping that no live VM NIC backs, with the reason (pure)."""
    out = []
    for m in mappings:
        vm = live.get(m.vm_id)
        if vm is None:
            out.append((m, f"VM {m.vm_id} is gone (DONE or absent)"))
        elif (m.nic_id, m.vm_ip, m.vnet_id) not in vm.nics:
            out.append((m, f"VM {m.vm_id} no longer has NIC {m.nic_id} with {m.vm_ip} "
                           f"on vnet {m.vnet_id}"))
    return out


def reconcile(store: Store, server: Any) -> list[str]:
    """Release the stale mappings; returns one line per release.

    The pool is read after the store's snapshot, so every mapping judged existed
    before the pool was listed, and VM ids are never reused; the release removes a
    mapping only if it is still exactly the one judged."""
    snapshot = store.state().mappings
    if not snapshot:
        return []
    found = stale(snapshot, client.vm_pool(server))
    released = set(store.release([m for m, _ in found]))
    return [f"VM {m.vm_id} NIC {m.nic_id}: EIP {m.eip} released: {why}"
            for m, why in found if m in released]
