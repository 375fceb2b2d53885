"""DS rm and the image snapshot actions, as the stock fs driver does them.

An image's snapshots live in <SOURCE>.snap/<id>. For a qcow2 datastore (TM_MAD
qcow2) revert makes a new active overlay on the chosen snapshot; otherwise it
copies the snapshot over the image. Each action opens the write-gate first and
checks SOURCE against the datastore's BASE_PATH before touching anything.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from onemetal.storage.ds_request import Request

from onemetal.errors import InputError
from onemetal.storage import datastores, ds_image
from onemetal.storage.ds_request import decode


def _target(args: list[str], stdin: TextIO) -> tuple[Request, str, str]:
    """The request, the image's SOURCE and its snapshot path, checked, with the gate open."""
    req, cfg = decode(args, stdin), datastores.settings()
    src = req.source(cfg)
    snap = f"{src}.snap/{req.snapshot_id()}"
    datastores.gate(src, cfg)
    if not os.path.isfile(snap):
        raise InputError(f"snapshot {snap} does not exist", "IMAGE/TARGET_SNAPSHOT")
    return req, src, snap


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil  # with bz2, lzma and zlib: only a snapshot directory needs it

        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def rm(args: list[str], stdin: TextIO) -> None:
    """The image, its snapshots and its md5sum; an image already gone is not an error."""
    req, cfg = decode(args, stdin), datastores.settings()
    src = req.source(cfg)
    datastores.gate(src, cfg)
    for path in (src, f"{src}.snap", f"{src}.md5sum"):
        _remove_tree(path)


def snap_delete(args: list[str], stdin: TextIO) -> None:
    _req, src, snap = _target(args, stdin)
    os.unlink(snap)
    _remove_tree(f"{src}.md5sum")


def _active(snap_dir: str) -> str:
    ids = [int(n) for n in os.listdir(snap_dir) if n.isdigit()]
    if not ids:
        raise InputError(f"{snap_dir} holds no active snapshot", "IMAGE/SOURCE")
    return f"{snap_dir}/{max(ids)}"


def snap_revert(args: list[str], stdin: TextIO) -> None:
    req, src, snap = _target(args, stdin)
    if req.text("DATASTORE/TM_MAD") == "qcow2":
        active = _active(os.path.dirname(snap))
        os.unlink(active)
        ds_image.create_overlay(snap, active)
        return
    import shutil

    shutil.copyfile(snap, f"{src}.tmp")
    os.replace(f"{src}.tmp", src)
    _remove_tree(f"{src}.md5sum")


def snap_flatten(args: list[str], stdin: TextIO) -> None:
    req, src, snap = _target(args, stdin)
    if req.text("IMAGE/FORMAT") == "qcow2":
        ds_image.convert(snap, f"{src}.tmp", "qcow2", "qcow2")
        os.replace(f"{src}.tmp", src)
    else:
        os.replace(snap, src)
    _remove_tree(f"{src}.snap")
    _remove_tree(f"{src}.md5sum")
