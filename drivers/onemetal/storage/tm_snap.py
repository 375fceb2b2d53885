"""Disk snapshots on the host, as OpenNebula's qcow2 driver keeps them (entries tm-host-snap_*).

A cloned disk is `disk.<i>` -> `disk.<i>.snap/<n>`, the active overlay; snapshot <id>
is the frozen file `disk.<i>.snap/<id>`. Creating snapshot <id> freezes the active file
and puts a new overlay `<id+1>` on it, with a backing path relative to the .snap
directory (`disk.<i>.snap/<id>`, which the `disk.<i>.snap -> .` link resolves), so the
chain survives the VM directory moving between datastores. Reverting recreates the
active overlay on the snapshot; deleting one first rebases its children onto its own
backing file (qemu-img rebase copies what they would lose).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

    from onemetal.config import Config

from onemetal import config
from onemetal.errors import InputError
from onemetal.storage import tm_args
from onemetal.storage.datastores import gate
from onemetal.storage.tm_host import COPY_TIMEOUT, _disk, _runner


def _layout(args: Sequence[str], entry: str) -> tuple[Config, tm_args.Target, int, str]:
    """DST SNAP_ID VMID checked, the gate opened; (cfg, disk, snap id, active file name)."""
    tm_args.expect(list(args), ("DST", "SNAP_ID", "VMID"), entry)
    cfg = config.load()
    target = _disk(args[0], cfg, "DST", args[2])
    snap_id = tm_args.number(args[1], "SNAP_ID")
    gate(target.vm_dir, cfg.storage)
    link = os.readlink(target.path) if os.path.islink(target.path) else ""
    prefix = os.path.basename(target.path) + ".snap/"
    if not link.startswith(prefix) or not link[len(prefix):].isdigit():
        raise InputError(f"{target.path} is not a qcow2 clone (disk.<i> -> disk.<i>.snap/<n>)",
                         "DST")
    return cfg, target, snap_id, link


def _backing(path: str, cfg: Config) -> str | None:
    from onemetal.storage.ds_image import read  # under prlimit, as every qemu-img info

    backing = (read(path, "DST", where="tm")[:1] or [{}])[0].get("backing-filename")
    return str(backing) if backing else None


def snap_create(args: Sequence[str], stdin: TextIO) -> None:
    """snap_create DST SNAP_ID VMID: freeze the active overlay, write on a new one."""
    cfg, target, snap_id, active = _layout(args, "tm-host-snap_create")
    snap_dir = target.path + ".snap"
    new = os.path.join(snap_dir, str(snap_id + 1))
    if os.path.lexists(new):
        raise InputError(f"snapshot file {new} already exists", "SNAP_ID")
    _runner(cfg).run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", active,
                      new])
    _relink(target.path, f"{os.path.basename(snap_dir)}/{snap_id + 1}")


def _relink(disk: str, to: str) -> None:
    """Point disk.<i> at another file of its .snap directory in one rename."""
    partial = disk + ".relink"
    if os.path.lexists(partial):
        os.unlink(partial)
    os.symlink(to, partial)
    os.replace(partial, disk)


def snap_revert(args: Sequence[str], stdin: TextIO) -> None:
    """snap_revert DST SNAP_ID VMID: the active overlay starts again from the snapshot."""
    cfg, target, snap_id, active = _layout(args, "tm-host-snap_revert")
    snap_dir = target.path + ".snap"
    if not os.path.isfile(os.path.join(snap_dir, str(snap_id))):
        raise InputError(f"{target.path} has no snapshot {snap_id}", "SNAP_ID")
    backing = f"{os.path.basename(snap_dir)}/{snap_id}"
    if backing == active:
        raise InputError(f"snapshot {snap_id} is the active file of {target.path}", "SNAP_ID")
    current = os.path.join(os.path.dirname(target.path), active)
    _runner(cfg).run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing,
                      current])


def snap_delete(args: Sequence[str], stdin: TextIO) -> None:
    """snap_delete DST SNAP_ID VMID: children are rebased past the snapshot, then it goes."""
    cfg, target, snap_id, active = _layout(args, "tm-host-snap_delete")
    snap_dir = target.path + ".snap"
    victim = os.path.join(snap_dir, str(snap_id))
    if not os.path.isfile(victim) or os.path.basename(active) == str(snap_id):
        raise InputError(f"{target.path} has no snapshot {snap_id} that is not active", "SNAP_ID")
    parent = _backing(victim, cfg)
    onto = ["-F", _format(parent, snap_dir, cfg), "-b", parent] if parent else ["-b", ""]
    for name in sorted(n for n in os.listdir(snap_dir) if n.isdigit()):
        child = os.path.join(snap_dir, name)
        backing = _backing(child, cfg)
        if backing and os.path.realpath(os.path.join(snap_dir, backing)) == os.path.realpath(victim):
            _runner(cfg, COPY_TIMEOUT).run(["qemu-img", "rebase", "-q", "-f", "qcow2", *onto,
                                            child])
    os.unlink(victim)


def _format(backing: str, snap_dir: str, cfg: Config) -> str:
    """The format of the file a snapshot's children are rebased onto, its chain checked."""
    from onemetal.storage.tm_image import checked_format

    return checked_format(os.path.join(snap_dir, backing), cfg, "DST", os.path.dirname(snap_dir))
