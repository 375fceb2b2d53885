"""`onenat`: NAT gateway and Elastic IPs, in the style of OpenNebula's own CLIs.

Every command that changes the store then syncs the gateway; errors are one line
on stderr and exit 1, with the store unchanged when the input was bad.
"""

from __future__ import annotations

import sys

import click

from onemetal import __version__
from onemetal.cli.onenat_common import api, emit_rows, errors, follow_up, formats, store, sync_or_exit
from onemetal.errors import OneMetalError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
def main() -> None:
    """Manage the NAT gateway and Elastic IP mappings of onemetal."""


# -- vnets ---------------------------------------------------------------------------------------
@main.group()
def vnet() -> None:
    """NATed vnets: subnet, the gateway address VMs route through, the SNAT address."""


@vnet.command("add")
@click.argument("vnet_id", type=int)
@click.option("--subnet", required=True, help="The vnet's IPv4 subnet, e.g. 192.168.0.0/24.")
@click.option("--gateway", required=True, help="Its gateway address, held by the NAT gateway.")
@click.option("--snat", required=True, help="The private address the subnet leaves from.")
@click.option("--vni", required=True, help="The vnet's VLAN_ID (its VNI on the mesh).")
def vnet_add(vnet_id: int, subnet: str, gateway: str, snat: str, vni: str) -> None:
    from onemetal.nat.model import Vnet

    with errors():
        store().add_vnet(Vnet.checked(vnet_id, subnet, gateway, snat, vni))
    sync_or_exit()


@vnet.command("delete")
@click.argument("vnet_id", type=int)
def vnet_delete(vnet_id: int) -> None:
    with errors():
        store().delete_vnet(vnet_id)
    sync_or_exit()


@vnet.command("list")
@formats
def vnet_list(fmt: str | None) -> None:
    with errors():
        rows = [v.__dict__ for v in store().state().vnets]
    emit_rows(rows, ["vnet_id", "subnet", "gateway", "snat_ip", "vni"], fmt, "NAT_VNETS", "VNET")


# -- pools ---------------------------------------------------------------------------------------
@main.group()
def pool() -> None:
    """Pools of Elastic IPs, each paired with the gateway's private secondary address."""


@pool.command("create")
@click.argument("name")
@click.option("--addresses", required=True, metavar="EIP=PRIVATE_IP[,...]")
def pool_create(name: str, addresses: str) -> None:
    from onemetal.nat.model import pairs
    from onemetal.opennebula import values

    with errors():
        store().create_pool(values.name(name, "name"), pairs(addresses, "addresses"))
    sync_or_exit()


@pool.command("delete")
@click.argument("name")
def pool_delete(name: str) -> None:
    with errors():
        store().delete_pool(name)
    sync_or_exit()


def _pool_rows(name: str | None) -> list[dict[str, object]]:
    state = store().state()
    used = {m.eip: m for m in state.mappings}
    return [{"pool": a.pool, "eip": a.eip, "private_ip": a.private_ip,
             "vm": used[a.eip].vm_id if a.eip in used else "-"}
            for a in state.addresses if name is None or a.pool == name]


@pool.command("list")
@formats
def pool_list(fmt: str | None) -> None:
    with errors():
        rows = _pool_rows(None)
    emit_rows(rows, ["pool", "eip", "private_ip", "vm"], fmt, "NAT_POOL_ADDRESSES", "ADDRESS")


@pool.command("show")
@click.argument("name")
@formats
def pool_show(name: str, fmt: str | None) -> None:
    with errors():
        rows = _pool_rows(name)
        if not rows:
            raise OneMetalError(f"no pool {name!r}", "name")
    emit_rows(rows, ["pool", "eip", "private_ip", "vm"], fmt, "NAT_POOL", "ADDRESS")


# -- mappings ------------------------------------------------------------------------------------
@main.command("map")
@click.argument("vm_id", type=int)
@click.option("--eip", default=None, help="This Elastic IP (default: the first free one).")
@click.option("--nic", "nic_id", type=int, default=None, help="This NIC (default: the first on a NATed vnet).")
@click.option("--pool", "pool_name", default=None, help="Take the EIP from this pool.")
def map_command(vm_id: int, eip: str | None, nic_id: int | None, pool_name: str | None) -> None:
    """Map an Elastic IP to a VM's NIC."""
    from onemetal.nat import service
    from onemetal.nat.model import ipv4

    with errors():
        mapping = service.map_vm(store(), api(), vm_id, nic_id,
                                 ipv4(eip, "eip") if eip else None, pool_name)
    click.echo(f"VM {mapping.vm_id} NIC {mapping.nic_id} ({mapping.vm_ip}): EIP {mapping.eip} "
               f"via {mapping.private_ip}")
    sync_or_exit()


@main.command("unmap")
@click.argument("vm_id", type=int, required=False)
@click.option("--nic", "nic_id", type=int, default=None)
@click.option("--eip", default=None, help="Unmap this Elastic IP, whatever VM holds it.")
def unmap_command(vm_id: int | None, nic_id: int | None, eip: str | None) -> None:
    """Release a VM's Elastic IP (or one given by --eip); open connections to it are cut."""
    from onemetal.nat import service
    from onemetal.nat.model import ipv4

    with errors():
        if (vm_id is None) == (eip is None):
            raise OneMetalError("give a VM id or --eip, not both", "vm")
        removed = service.unmap_vm(store(), vm_id=vm_id, nic_id=nic_id,
                                   eip=ipv4(eip, "eip") if eip else None)
    for m in removed:
        click.echo(f"VM {m.vm_id} NIC {m.nic_id}: EIP {m.eip} released")
    sync_or_exit()


def _mapping_rows() -> list[dict[str, object]]:
    return [m.__dict__ for m in store().state().mappings]


@main.command("list")
@formats
def list_command(fmt: str | None) -> None:
    """Every mapping."""
    with errors():
        rows = _mapping_rows()
    emit_rows(rows, ["eip", "private_ip", "vm_id", "nic_id", "vm_ip", "vnet_id"], fmt,
          "NAT_MAPPINGS", "MAPPING")


@main.command("show")
@click.argument("what")
@formats
def show_command(what: str, fmt: str | None) -> None:
    """One VM's mappings (by id) or one EIP's."""
    with errors():
        rows = [r for r in _mapping_rows() if str(r["vm_id"]) == what or r["eip"] == what]
        if not rows:
            raise OneMetalError(f"{what} has no mapping", "vm")
    emit_rows(rows, ["eip", "private_ip", "vm_id", "nic_id", "vm_ip", "vnet_id"], fmt,
          "NAT_MAPPINGS", "MAPPING")


# -- forwards ------------------------------------------------------------------------------------
@main.group()
def forward() -> None:
    """Port forwards: a gateway address:port/protocol to a VM address:port."""


@forward.command("add")
@click.argument("public")
@click.argument("target")
def forward_add(public: str, target: str) -> None:
    """PUBLIC is ADDRESS:PORT/tcp|udp on the gateway, TARGET is VM_IP:PORT."""
    from onemetal.nat.model import Forward, endpoint

    with errors():
        address, port, proto = endpoint(public, "public")
        vm_ip, vm_port, _ = endpoint(target, "target", with_protocol=False)
        store().add_forward(Forward.checked(address, port, proto, vm_ip, vm_port))
    sync_or_exit()


@forward.command("delete")
@click.argument("public")
def forward_delete(public: str) -> None:
    from onemetal.nat.model import Forward, endpoint

    with errors():
        address, port, proto = endpoint(public, "public")
        probe = Forward.checked(address, port, proto, "0.0.0.1", 1)
        store().delete_forward(probe.private_ip, probe.port, probe.protocol)
    sync_or_exit()


@forward.command("list")
@formats
def forward_list(fmt: str | None) -> None:
    with errors():
        rows = [f.__dict__ for f in store().state().forwards]
    emit_rows(rows, ["private_ip", "port", "protocol", "vm_ip", "vm_port"], fmt, "NAT_FORWARDS",
          "FORWARD")


# -- the gateway ---------------------------------------------------------------------------------
def _gateway(dry_run: bool) -> list[str]:
    from onemetal import config
    from onemetal.nat import gateway

    with errors():
        return gateway.sync(config.load(), store(), dry_run=dry_run)
    return []


@main.command()
def plan() -> None:
    """What `sync` would change on the gateway (store vs gateway); empty when in step."""
    for line in _gateway(dry_run=True)[1:]:
        click.echo(line)


@main.command()
def sync() -> None:
    """Release the mappings of VMs (or NICs) that are gone, then make the VMs' marks and the
    gateway match the store (after a reboot, a flushed table, a lost or failed hook)."""
    from onemetal.nat import live

    code = 0
    try:
        for line in live.reconcile(store(), api()):
            click.echo(line)
    except OneMetalError as exc:
        click.echo(f"onenat: mappings not checked against the VMs: {exc}", err=True)
        code = 1
    code = follow_up() or code
    if code:
        sys.exit(code)


@main.command()
def status() -> None:
    """Counts from the store, and whether the gateway matches it."""
    with errors():
        state = store().state()
    click.echo(f"vnets {len(state.vnets)}, addresses {len(state.addresses)}, mappings "
               f"{len(state.mappings)}, forwards {len(state.forwards)}")
    differences = _gateway(dry_run=True)[1:]
    click.echo("gateway: in step with the store" if not differences
               else f"gateway: {len(differences)} differences (onenat plan, onenat sync)")
    if differences:
        sys.exit(1)


if __name__ == "__main__":
    main()
