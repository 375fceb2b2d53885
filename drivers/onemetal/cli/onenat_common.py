"""What every onenat command shares: one-line errors, the store and API opened once, output
formats, and the follow-up after a store change (the VMs' marks, then the gateway).

The VM hooks (nat/hooks.py) end with the same follow-up as the CLI.
"""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import click

from onemetal.errors import OneMetalError


def fail(exc: BaseException) -> None:
    click.echo(f"onenat: {exc}", err=True)
    sys.exit(1)


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except (OneMetalError, OSError) as exc:
        fail(exc)


@functools.cache
def store() -> Any:
    """The store, opened (and its schema checked) once per command."""
    from onemetal import config
    from onemetal.nat.store import Store

    return Store(config.load().nat.store)


def api() -> Any:
    from onemetal.opennebula import client

    return client.connect()


def formats(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-x", "--xml", "fmt", flag_value="xml", help="XML output.")(f)
    f = click.option("-j", "--json", "fmt", flag_value="json", help="JSON output.")(f)
    return f


def emit_rows(rows: Sequence[dict[str, object]], columns: Sequence[str], fmt: str | None,
          root: str, item: str) -> None:
    from onemetal.nat.output import emit

    click.echo(emit(rows, columns, fmt or "table", root, item))


def follow_up(if_changed: bool = False) -> int:
    """After a store change: the VMs' USER_TEMPLATE marks (API), then the gateway. What fails
    stays pending in the store and the next `onenat sync` does it; returns the exit code.

    `if_changed` (the hooks): no push when the gateway already applied the store's
    generation, since nat-apply holds the gateway host's net lock, and a tenant looping
    poweroff/resume would otherwise hold up that host's VNM actions."""
    from onemetal import config
    from onemetal.nat import gateway, service

    cfg, nat_store, code = config.load(), store(), 0
    if nat_store.unmarked() or nat_store.pending_unmarks():
        try:
            for line in service.mark(nat_store, api()):
                click.echo(line)
        except OneMetalError as exc:
            click.echo(f"onenat: stored, but the VM template is not updated yet: {exc} "
                       "(`onenat sync` retries)", err=True)
            code = 1
    if not cfg.nat.gateway:
        click.echo("note: no gateway configured ([nat] gateway in onemetal.conf); the change is "
                   "stored and `onenat sync` applies it", err=True)
        return code
    if if_changed and gateway.pushed(cfg) == nat_store.generation:
        return code
    try:
        for line in gateway.sync(cfg, nat_store)[1:]:
            click.echo(line)
    except OneMetalError as exc:
        click.echo(f"onenat: stored, but the gateway is not updated yet: {exc} "
                   "(`onenat sync` retries)", err=True)
        code = 1
    return code


def sync_or_exit() -> None:
    code = follow_up()
    if code:
        sys.exit(code)
