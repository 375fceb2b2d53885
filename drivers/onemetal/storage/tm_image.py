"""Which files a disk's qcow2 chain may name, on the host (TM clone, cpds, snapshots).

A guest writes every byte of a raw disk: it can write a qcow2 header there whose
backing file is another VM's disk or any file oneadmin reads. qemu-img probing that
disk then reads it as qcow2, and a clone or a `cpds` would copy the other file into
the user's VM or image. So every file of a disk's chain is checked, resolved:

- a file inside the VM directory may name files of that VM directory; only the
  base overlay `disk.<i>.snap/0` (which the driver puts on the image) may name one
  file elsewhere under the datastores;
- any other file (an image, or a persistent image a `disk.<i>` links to) may name
  only its own snapshots (`<image>.snap/...`).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.config import Config

from onemetal.errors import InputError
from onemetal.storage import ds_image
from onemetal.storage.mounts import within

_BASE_OVERLAY = re.compile(r"disk\.\d+\.snap/0\Z")


def _allowed(element: str, named: str, vm_dir: str | None, datastores: str) -> bool:
    if vm_dir and within(element, vm_dir):
        if within(named, vm_dir):
            return True
        rel = os.path.relpath(element, vm_dir)
        return bool(_BASE_OVERLAY.match(rel)) and within(named, datastores)
    return within(named, element + ".snap")


def checked_format(path: str, cfg: Config, field: str, vm_dir: str | None = None) -> str:
    """The format of `path` (raw or qcow2), once its whole chain is within what it may name."""
    datastores = os.path.realpath(cfg.storage.datastores_dir)
    real_vm = os.path.realpath(vm_dir) if vm_dir else None
    chain = ds_image.read(path, field, chain=True, where="tm")
    for data in chain:
        element = os.path.realpath(str(data.get("filename", path)))
        if not within(element, datastores):  # e.g. a disk.<i> linking to a file of the host
            raise InputError(f"{path} resolves to {element}, outside the datastores", field)
        for named in sorted(ds_image.named_files(data)):
            if not _allowed(element, os.path.realpath(named), real_vm, datastores):
                raise InputError(f"{path} names {named}, a file it may not read through "
                                 "(see docs/storage.md)", field)
    fmt = str(chain[0].get("format", "")) if chain else ""
    if fmt not in ds_image.FORMATS:
        raise InputError(f"{path} holds a {fmt or 'unknown'} image (raw or qcow2 only)", field)
    return fmt
