"""The transfer driver's lab: a frontend (one-0) running tm/onemetal/<action> as oneadmin, reaching
one-1 over SSH, both mounting one datastore directory as they would an NFS share."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Iterator

from conftest import installed_lab
from onemetal.lab import Lab
from onemetal.lab.host import ONEADMIN_HOME, ONEADMIN_ID
from onemetal.lab.lab import HOST_CONF

DS = "/var/lib/one/datastores"
TM = "/var/tmp/one/tm/onemetal"
IMAGE = f"{DS}/1/abc"


def _own(path: str, mode: int) -> None:
    os.chown(path, ONEADMIN_ID, ONEADMIN_ID)
    os.chmod(path, mode)


def share_datastores(lab, shared: str) -> None:
    """One directory mounted at the datastores path of every host, as an NFS share would be."""
    os.makedirs(shared, exist_ok=True)
    _own(shared, 0o755)
    for host in lab.hosts:
        os.makedirs(host.path(DS), exist_ok=True)
        host.run(["mount", "--bind", shared, DS])


def make_frontend(lab, name: str) -> None:
    """oneadmin on `name` reaches the other hosts as oned's oneadmin does."""
    lab.host(name).give_oneadmin_key(lab.key, lab.known_hosts)


def conf(profile: str) -> str:
    return HOST_CONF.replace("[net]\n", "[net]\nunderlay_mtu = 1500\n") + \
        f'[storage]\nprofile = "{profile}"\n'


@contextmanager
def tm_lab(image_mb: int) -> Iterator[Lab]:
    """Two hosts sharing the datastores, profile "none", one-0 the frontend with a qcow2 image."""
    with installed_lab(2) as lab:
        share_datastores(lab, os.path.join(lab.workdir, "shared-datastores"))
        make_frontend(lab, "one-0")
        for host in lab.hosts:
            host.write_conf(conf("none"))
        fe = lab.ssh("one-0")
        fe.run(["mkdir", "-p", f"{DS}/1", f"{DS}/0"])
        fe.run(["qemu-img", "create", "-q", "-f", "qcow2", IMAGE, f"{image_mb}M"])
        yield lab


def tm(lab, action: str, *args: str, check: bool = True):
    return lab.ssh("one-0").run([f"{TM}/{action}", *args], check=check, timeout=60)
