"""`onemetal`: install the drivers into a frontend, and run the reference deployment on one machine."""

from __future__ import annotations

import logging
import sys

import click

from onemetal import __version__
from onemetal.errors import OneMetalError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.doctor_report import Check


def _fail(exc: OneMetalError | OSError) -> None:
    click.echo(f"onemetal: {exc}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
@click.option("-v", "--verbose", is_flag=True, help="Log every command run.")
def main(verbose: bool) -> None:
    """onemetal: OpenNebula drivers for rented bare metal."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--prefix", default="/var/lib/one", show_default=True,
              help="OpenNebula's var directory (remotes/ lives below it).")
@click.option("--etc", "etc_dir", default="/etc/one", show_default=True,
              help="OpenNebula's configuration directory.")
@click.option("--source", default=None, help="Tree holding remotes/, hooks/, etc/ (default: this package's).")
@click.option("--systemd-dir", default="/etc/systemd/system", show_default=True,
              help="Where the sync services and timers go.")
@click.option("--sudoers-dir", default=None,
              help="Also install etc/sudoers.d/* here, root 0440, once visudo accepted them "
                   "(/etc/sudoers.d on a host).")
@click.option("--dry-run", is_flag=True, help="Print the plan, change nothing.")
@click.option("--apply-oned-conf", is_flag=True, help="Also write the oned.conf fragments into oned.conf.")
def install(prefix: str, etc_dir: str, source: str | None, systemd_dir: str,
            sudoers_dir: str | None, dry_run: bool, apply_oned_conf: bool) -> None:
    """Install remotes (with the core they carry), hooks and onemetal.conf. Idempotent."""
    from onemetal import install as inst

    out: list[str] = []
    try:
        layout = inst.Layout(prefix=prefix, etc=etc_dir, source=source or inst.source_root(),
                             systemd=systemd_dir, sudoers=sudoers_dir)
        inst.install(layout, dry_run=dry_run, apply_oned_conf=apply_oned_conf, out=out)
    except (OneMetalError, OSError) as exc:
        _fail(exc)
    click.echo("\n".join(out))
    if not dry_run:
        click.echo("Then, as oneadmin: onehost sync --force")


@main.command()
@click.option("--prefix", default="/var/lib/one", show_default=True)
@click.option("--etc", "etc_dir", default="/etc/one", show_default=True)
@click.option("--systemd-dir", default="/etc/systemd/system", show_default=True,
              help="As given to install.")
@click.option("--sudoers-dir", default=None, help="As given to install, if it was.")
@click.option("--dry-run", is_flag=True, help="Print the plan, change nothing.")
def uninstall(prefix: str, etc_dir: str, systemd_dir: str, sudoers_dir: str | None,
              dry_run: bool) -> None:
    """Remove what `onemetal install` put there (an edited onemetal.conf is kept)."""
    from onemetal import install as inst

    out: list[str] = []
    try:
        layout = inst.Layout(prefix=prefix, etc=etc_dir, source="", systemd=systemd_dir,
                             sudoers=sudoers_dir)
        inst.uninstall(layout, dry_run=dry_run, out=out)
    except (OneMetalError, OSError) as exc:
        _fail(exc)
    click.echo("\n".join(out))


@main.group()
def mesh() -> None:
    """The VXLAN mesh of ovswitch_vxlan_unicast: push the host pool to every host."""


def _mesh_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--hosts-file", type=click.Path(dir_okay=False),
                     help="Host list (`name [tunnel_ip]` per line) instead of the API's host pool.")(f)
    f = click.option("--host", "host_args", multiple=True, metavar="NAME[=IP]",
                     help="A member host (repeatable) instead of the API's host pool.")(f)
    return click.option("--parallel", default=8, show_default=True, type=click.IntRange(1, 64),
                        help="Hosts pushed at once.")(f)


def _mesh(hosts_file: str | None, host_args: tuple[str, ...], parallel: int, dry_run: bool) -> None:
    from onemetal import config
    from onemetal.net import sync
    from onemetal.opennebula import client

    try:
        cfg = config.load()
        if hosts_file or host_args:
            lines = [a.replace("=", " ", 1) for a in host_args]
            if hosts_file:
                with open(hosts_file, encoding="utf-8") as f:
                    lines += f.read().splitlines()
            pool = sync.parse_host_list(lines, hosts_file or "--host")
        else:
            pool = client.host_pool(client.connect())
        hosts = sync.members(pool)
        results = sync.push(hosts, lambda name: config.ssh_runner(cfg.ssh, name),
                            dry_run=dry_run, parallel=parallel)
    except (OneMetalError, OSError) as exc:
        _fail(exc)
    for result in results:
        head, *rest = result.lines or ("",)
        click.echo(f"{result.host}: {head if result.ok else 'FAILED: ' + head}")
        for line in rest:
            click.echo(f"  {line}")
    if not all(r.ok for r in results):
        sys.exit(1)


@mesh.command()
@_mesh_options
def sync(hosts_file: str | None, host_args: tuple[str, ...], parallel: int) -> None:
    """Converge every host's tunnels to the host pool (no write where nothing changed)."""
    _mesh(hosts_file, host_args, parallel, dry_run=False)


@mesh.command()
@_mesh_options
def plan(hosts_file: str | None, host_args: tuple[str, ...], parallel: int) -> None:
    """Print what `mesh sync` would change on each host; change nothing."""
    _mesh(hosts_file, host_args, parallel, dry_run=True)


@main.group()
def mount() -> None:
    """Datastore shares: mount them as their [storage] profile wants."""


@mount.command("ensure")
@click.argument("datastore")
@click.option("--source", default=None, metavar="SERVER:/PATH",
              help="The share (default: [storage] source).")
@click.option("--immutable", is_flag=True,
              help="Make the bare mount point immutable (chattr +i) before mounting.")
@click.option("--host", default=None, help="Do it on this host, over SSH as oneadmin.")
def mount_ensure(datastore: str, source: str | None, immutable: bool, host: str | None) -> None:
    """Mount the share on DATASTORE (a datastore directory or id); nothing to do if it is there."""
    from onemetal import config

    args = [datastore, *(["--source", source] if source else []),
            *(["--immutable"] if immutable else [])]
    try:
        if host:
            cfg = config.load()
            result = config.ssh_runner(cfg.ssh, host).run_entry("mount-ensure", args, check=False)
            if result.returncode:
                lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
                click.echo(f"onemetal: {host}: {lines[0]}", err=True)
                sys.exit(1)
            click.echo(result.stdout.rstrip())
            return
        from onemetal.storage import mount_ensure as ensure

        click.echo(ensure.entry(args, sys.stdin))
    except (OneMetalError, OSError) as exc:
        _fail(exc)


def _report(checks: list[Check], as_json: bool) -> None:
    """The doctor's checks on stdout; exit 1 when one failed."""
    from onemetal import doctor_report

    click.echo(doctor_report.dumps(checks) if as_json else doctor_report.text(checks))
    if doctor_report.failed(checks):
        sys.exit(1)


@main.group(invoke_without_command=True)
@click.option("--host", default=None, help="Check only this host (and NAT if it is the gateway).")
@click.option("--remotes", default="/var/lib/one/remotes", show_default=True,
              help="The frontend's remotes directory (what onehost sync copies).")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, host: str | None, remotes: str, as_json: bool) -> None:
    """Check the installation (frontend, NAT, every host) and say what to fix (docs/doctor.md)."""
    if ctx.invoked_subcommand:
        return
    from onemetal import config
    from onemetal.doctor import frontend

    try:
        checks = frontend.run(config.load(), remotes, host)
    except (OneMetalError, OSError) as exc:
        _fail(exc)
    _report(checks, as_json)


@doctor.command("storage")
@click.option("--host", default=None, help="Run the checks on this host, over SSH as oneadmin.")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor_storage(host: str | None, as_json: bool) -> None:
    """Each datastore directory: mounted as its policy wants, space, bare mount point, NFS server."""
    from onemetal import config, doctor_report
    from onemetal.storage import doctor as storage_doctor

    try:
        cfg = config.load()
        checks = (doctor_report.from_host(config.ssh_runner(cfg.ssh, host), "storage-doctor")
                  if host else storage_doctor.run(cfg.storage))
    except (OneMetalError, OSError) as exc:
        _fail(exc)
    _report(checks, as_json)


@main.command()
@click.option("--underlay-mtu", default=1500, show_default=True, type=click.IntRange(1280, 9216),
              help="The provider network's MTU (9001 on AWS inside a VPC).")
@click.option("-j", "--json", "as_json", is_flag=True,
              help="Print the report as JSON (progress goes to stderr).")
@click.option("--keep", is_flag=True, help="Leave the lab up and print how to enter it.")
@click.option("--inject", default=None, metavar="FAULT",
              help="Break something mid-run: nat-flush, tunnel, unmount, package or remotes.")
@click.option("--down", "down", is_flag=True,
              help="Tear down labs left up by --keep (TOKEN: only that one) and exit.")
@click.argument("token", required=False)
def demo(underlay_mtu: int, as_json: bool, keep: bool, inject: str | None, down: bool,
         token: str | None) -> None:
    """Build the reference deployment on this machine (hosts as namespaces), show it work,
    tear it down (docs/demo.md)."""
    try:
        if down or token:
            from onemetal.lab import LabError
            from onemetal.lab.keep import teardown_kept

            if not down:
                raise OneMetalError(f"{token!r}: a TOKEN is only taken with --down", field="TOKEN")
            try:
                removed = teardown_kept(token)
            except LabError as exc:  # no such kept lab, or one not fully removed: one line
                raise OneMetalError(str(exc), field="--down") from exc
            click.echo(f"removed {len(removed)} kept lab(s){': ' if removed else ''}"
                       f"{', '.join(removed)}")
            sys.exit(0)
        from onemetal.demo import run_demo

        sys.exit(run_demo(underlay_mtu, as_json=as_json, keep=keep, inject=inject))
    except OneMetalError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
