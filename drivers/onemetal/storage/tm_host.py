"""What the transfer driver runs on the host that holds the VM directory (entries tm-host-*).

Each operation checks its paths again (the host trusts no argument), opens the
write-gate (storage.datastores.gate) before it creates anything, the VM directory
included, and runs qemu-img, cp, mv and rm through onemetal.run with a deadline:
a share that stops answering fails the action instead of hanging it.
Disks follow the qcow2 driver's layout: `disk.<i>` links to `disk.<i>.snap/0`,
the overlay whose backing file is the image, and `disk.<i>.snap/disk.<i>.snap` links
to `.` so snapshot chains resolve from both places.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

    from onemetal.config import Config

from onemetal import config
from onemetal.errors import InputError
from onemetal.run import Runner
from onemetal.storage import tm_args
from onemetal.storage.datastores import gate, inside

# A full copy or conversion of an image may take long; a hung share still ends it.
COPY_TIMEOUT = 3600.0


def _runner(cfg: Config, timeout: float | None = None) -> Runner:
    return Runner(timeout=timeout or cfg.core.command_timeout, where="tm")


def _disk(word: str, cfg: Config, field: str, vm_id: str) -> tm_args.Target:
    return tm_args.disk_path(word, cfg.storage, field, tm_args.number(vm_id, "VMID"))


def open_vm_dir(target: tm_args.Target, cfg: Config) -> None:
    """The write-gate for the VM directory, then the directory (mkdir -p, as ssh_make_path)."""
    gate(target.vm_dir, cfg.storage)
    os.makedirs(target.vm_dir, exist_ok=True)


def image_format(path: str, cfg: Config, vm_dir: str | None = None) -> str:
    """The format qemu-img reads in `path`, whose chain names no file it may not (tm_image)."""
    from onemetal.storage.tm_image import checked_format

    return checked_format(path, cfg, "SRC", vm_dir)


def _room(vm_dir: str, size_mb: int, cfg: Config) -> None:
    """Refuse a disk (or growth) larger than the free space of the VM directory's file system:
    a sparse file of any size is created at once, and the guest could then fill the share."""
    from onemetal.storage import probe

    free = probe.space(vm_dir, cfg.storage.probe_timeout)["free"] >> 20
    if size_mb > free:
        raise InputError(f"{size_mb} MB is more than the {free} MB free in {vm_dir}", "DISK/SIZE")


def _overlay(src: str, fmt: str, dst: str, cfg: Config) -> None:
    """qcow_dir_cmd's `create`: disk.<i>.snap/0 on top of the image, disk.<i> linking to it."""
    snap_dir, name = dst + ".snap", os.path.basename(dst)
    _runner(cfg).run(["rm", "-rf", "--one-file-system", "--", snap_dir, dst])
    os.mkdir(snap_dir)
    _runner(cfg).run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", src,
                      os.path.join(snap_dir, "0")])
    os.symlink(".", os.path.join(snap_dir, name + ".snap"))
    os.symlink(os.path.join(name + ".snap", "0"), dst)


def _image_to_disk(args: Sequence[str], entry: str) -> tuple[Config, str, tm_args.Target]:
    """SRC(image) DST(disk) VMID checked, and the VM directory opened through the gate."""
    tm_args.expect(list(args), ("SRC", "DST", "VMID"), entry)
    cfg = config.load()
    src = inside(args[0], cfg.storage.datastores_dir, "SRC")
    target = _disk(args[1], cfg, "DST", args[2])
    open_vm_dir(target, cfg)
    return cfg, src, target


def clone(args: Sequence[str], stdin: TextIO) -> None:
    """clone SRC DST VMID: an overlay on a qcow2 image, a full copy of a raw one (as qcow2's)."""
    cfg, src, target = _image_to_disk(args, "tm-host-clone")
    fmt = image_format(src, cfg)
    if fmt == "qcow2":
        _overlay(src, fmt, target.path, cfg)
    else:
        _runner(cfg, COPY_TIMEOUT).run(["cp", "--sparse=always", "--", src, target.path])


def ln(args: Sequence[str], stdin: TextIO) -> None:
    """ln SRC DST VMID: a persistent image used in place, through a link in the VM directory."""
    cfg, src, target = _image_to_disk(args, "tm-host-ln")
    _runner(cfg).run(["ln", "-sfn", "--", src, target.path])


def mkimage(args: Sequence[str], stdin: TextIO) -> None:
    """mkimage SIZE_MB FORMAT DST VMID: an empty volatile disk (raw, qcow2, or swap: raw
    with a swap signature, as common/mkimage runs mkswap)."""
    tm_args.expect(list(args), ("SIZE", "FORMAT", "DST", "VMID"), "tm-host-mkimage")
    cfg = config.load()
    size = tm_args.number(args[0], "DISK/SIZE")
    fmt = tm_args.new_disk_format(args[1])
    if fmt == "swap" and size < 1:
        raise InputError("a swap disk needs at least 1 MB", "DISK/SIZE")
    target = _disk(args[2], cfg, "DST", args[3])
    open_vm_dir(target, cfg)
    _room(target.vm_dir, size, cfg)
    _runner(cfg).run(["qemu-img", "create", "-q", "-f", "raw" if fmt == "swap" else fmt,
                      target.path, f"{size}M"])
    if fmt == "swap":
        from onemetal.storage.swap import write_signature

        write_signature(target.path)


def resize(args: Sequence[str], stdin: TextIO) -> None:
    """resize DST SIZE_MB VMID: grow a disk (its top image: disk.<i> links to it)."""
    tm_args.expect(list(args), ("DST", "SIZE", "VMID"), "tm-host-resize")
    cfg = config.load()
    target = _disk(args[0], cfg, "DST", args[2])
    size = tm_args.number(args[1], "DISK/SIZE")
    gate(target.vm_dir, cfg.storage)
    fmt = image_format(target.path, cfg, target.vm_dir)
    from onemetal.storage.ds_image import info

    _room(target.vm_dir, size - info(target.path, "DST").virtual_mb, cfg)
    _runner(cfg).run(["qemu-img", "resize", "-q", "-f", fmt, target.path, f"{size}M"])


def mv(args: Sequence[str], stdin: TextIO) -> None:
    """mv SRC DST VMID: a VM directory or disk to another place under datastores_dir."""
    tm_args.expect(list(args), ("SRC", "DST", "VMID"), "tm-host-mv")
    cfg = config.load()
    vm_id = tm_args.number(args[2], "VMID")
    src = tm_args.vm_path(args[0], cfg.storage, "SRC", vm_id)
    dst = tm_args.vm_path(args[1], cfg.storage, "DST", vm_id)
    # Both sides first: without its share, src looks absent and mv would "succeed".
    gate(src.vm_dir, cfg.storage)
    gate(dst.vm_dir, cfg.storage)
    if src.path == dst.path or not os.path.lexists(src.path):
        return  # a shared datastore: the frontend and the host see the same directory
    os.makedirs(os.path.dirname(dst.path), exist_ok=True)
    _runner(cfg, COPY_TIMEOUT).run(["mv", "-T", "--", src.path, dst.path])


def delete(args: Sequence[str], stdin: TextIO) -> None:
    """delete DST VMID: a VM directory, or one of its disks with its .snap directory."""
    tm_args.expect(list(args), ("DST", "VMID"), "tm-host-delete")
    cfg = config.load()
    target = tm_args.vm_path(args[0], cfg.storage, "DST",
                             tm_args.number(args[1], "VMID"))
    gate(target.vm_dir, cfg.storage)
    paths = [target.path] if target.path == target.vm_dir else [target.path, target.path + ".snap"]
    _runner(cfg, COPY_TIMEOUT).run(["rm", "-rf", "--one-file-system", "--", *paths])


def cpds(args: Sequence[str], stdin: TextIO) -> None:
    """cpds SRC DST VMID: save a disk as a new image (qemu-img convert flattens the chain)."""
    tm_args.expect(list(args), ("SRC", "DST", "VMID"), "tm-host-cpds")
    cfg = config.load()
    src = _disk(args[0], cfg, "SRC", args[2])
    dst = inside(args[1], cfg.storage.datastores_dir, "DST")
    gate(dst, cfg.storage)
    fmt = image_format(src.path, cfg, src.vm_dir)
    _runner(cfg, COPY_TIMEOUT).run(["qemu-img", "convert", "-q", "-U", "-f", fmt, "-O", fmt,
                                    src.path, dst])
