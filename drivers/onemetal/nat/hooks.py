"""VM state hooks: map a VM that asks for an Elastic IP when it reaches RUNNING, release it at DONE.

The hook manager passes the VM's XML (base64, on stdin with ARGUMENTS_STDIN=yes).
The decision is made from that document, onemetal.conf's EIP policy (the VM's
group must be allowed, its owner under the quotas, the address of a pool its group
may use: nat/policy.py) and the store
alone, and the store is changed first, in one transaction: once the hook has run
that far, the intent is kept. The two steps that can fail afterwards (the mark on the VM's USER_TEMPLATE
through the API, the gateway) are what `onenat sync` retries, so a failed or lost
hook is repaired by the next sync. RUNNING is reached again after poweroff, stop
or migration: a VM that already has its mapping keeps it, nothing changes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, TextIO

from onemetal.config import NatConfig
from onemetal.errors import InputError
from onemetal.nat import policy
from onemetal.nat.model import ipv4
from onemetal.nat.store import Store
from onemetal.opennebula import payload
from onemetal.opennebula.vm import VM

if TYPE_CHECKING:
    from lxml import etree

REQUEST = policy.REQUEST


def requested(vm: VM) -> str | None:
    """None: no EIP asked; "": any free one; else the address asked for."""
    value = (vm.user_template.get(REQUEST) or "").strip()
    if value.lower() in ("", "no", "false", "0"):
        return None
    if value.lower() in ("yes", "true", "1"):
        return ""
    return ipv4(value, f"VM[ID={vm.id}]/USER_TEMPLATE/{REQUEST}")


def on_running(store: Store, cfg: NatConfig, root: "etree._Element") -> list[str]:
    vm = VM.from_xml(root)
    wanted = requested(vm)
    if wanted is None:
        return [f"VM {vm.id}: no {REQUEST} requested"]
    state = store.state()
    if any(m.vm_id == vm.id for m in state.mappings):
        return [f"VM {vm.id}: already mapped"]  # also one an administrator mapped by hand
    owner, gname = policy.owner_of(root, vm.id)
    policy.authorize(cfg, vm.id, owner, gname)
    allowed = policy.pools(cfg, vm.id, owner, gname)
    natted = {v.vnet_id for v in state.vnets}
    nic = next((n for n in vm.nics if n.network_id in natted and n.ip and not n.alias), None)
    if nic is None:
        raise InputError(f"VM {vm.id} asks for an EIP but has no NIC with an IP on a NATed vnet",
                         f"VM[ID={vm.id}]/TEMPLATE/NIC")
    m = store.map(vm.id, nic.nic_id, nic.ip, nic.network_id, eip=wanted or None, owner=owner,
                  quota=policy.quota(cfg), pools=allowed,
                  field=f"VM[ID={vm.id}]/USER_TEMPLATE/{REQUEST}")
    return [f"VM {vm.id} NIC {m.nic_id} ({m.vm_ip}): EIP {m.eip} via {m.private_ip}"]


def on_done(store: Store, cfg: NatConfig, root: "etree._Element") -> list[str]:
    vm = VM.from_xml(root)
    released = store.unmap(vm_id=vm.id)
    return [f"VM {vm.id}: EIP {m.eip} released" for m in released] or [f"VM {vm.id}: no EIP"]


EVENTS: dict[str, Callable[[Store, NatConfig, "etree._Element"], list[str]]] = {
    "running": on_running, "done": on_done}


def handle(event: str, stdin: TextIO, store: Store, cfg: NatConfig) -> list[str]:
    if event not in EVENTS:
        raise InputError(f"unknown event {event!r} (known: {', '.join(EVENTS)})", "hook")
    return EVENTS[event](store, cfg, payload.read_payload(stdin.read(), "stdin", root="VM"))


def main(program: str, stdin: TextIO) -> int:
    """hooks/nat-vm-<event>: store first, then the VM's mark and the gateway (see above).
    Output goes to the hook's execution log (`onehook show <id> -e <execution>`)."""
    import click

    from onemetal import config
    from onemetal.cli.onenat_common import follow_up
    from onemetal.errors import OneMetalError

    event = os.path.basename(program).rsplit("-", 1)[-1]
    try:
        cfg = config.load().nat
        for line in handle(event, stdin, Store(cfg.store), cfg):
            click.echo(line)
    except OneMetalError as exc:
        click.echo(f"onenat hook {event}: {exc}", err=True)
        return 1
    return follow_up(if_changed=True)
