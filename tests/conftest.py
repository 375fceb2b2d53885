"""Fixtures: a 3-host lab with onemetal installed in a frontend prefix and synced to the hosts."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "drivers"))

from onemetal import install  # noqa: E402
from onemetal.lab import Lab, drive  # noqa: E402
from onemetal.lab.teardown import sweep_stale  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def pytest_sessionstart(session: pytest.Session) -> None:
    sweep_stale()


@contextmanager
def installed_lab(hosts: int, mesh: Sequence[str] = (), **options: object) -> Iterator[Lab]:
    """A lab with onemetal installed in a frontend prefix and the remotes synced to every host;
    the hosts named in `mesh` joined by `onemetal mesh sync`."""
    with Lab(hosts=hosts, **options) as lab:  # type: ignore[arg-type]
        prefix = os.path.join(lab.workdir, "frontend", "var", "lib", "one")
        layout = install.Layout(prefix=prefix, etc=os.path.join(lab.workdir, "frontend", "etc"),
                                systemd=os.path.join(lab.workdir, "frontend", "systemd"),
                                source=REPO)
        install.install(layout, dry_run=False, apply_oned_conf=False, out=[])
        lab.sync_remotes(os.path.join(prefix, "remotes"))
        if mesh:
            drive.mesh(lab, "sync", mesh)
        yield lab


@pytest.fixture(scope="module")
def lab3() -> Iterator[Lab]:
    with installed_lab(3) as lab:
        yield lab
