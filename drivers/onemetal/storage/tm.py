"""The transfer driver's actions on the frontend (entries tm-<action>; remotes/tm/onemetal).

oned runs `<remotes>/tm/onemetal/<action> <args>` on the frontend as oneadmin. Every
argument is checked here (storage/tm_args.py) before anything runs; then the work
goes over SSH to the host named in the destination, as the stock shared/qcow2
driver's ssh_exec_and_log does, where storage/tm_host.py opens the write-gate and
changes files. A datastore is shared (SHARED=YES): moving a VM between hosts moves
no file, so the migrate actions only check their arguments.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

    from onemetal.config import Config

from onemetal import config
from onemetal.errors import OneMetalError
from onemetal.opennebula.protocol import ERROR_BEGIN, ERROR_END
from onemetal.storage import tm_args as a

# The host side's own deadlines (COPY_TIMEOUT) end first; this covers ssh itself.
HOST_TIMEOUT = 3700.0


class HostActionFailed(OneMetalError):
    """The host refused or failed the operation; its own one-line reason is kept."""


def _reason(stderr: str) -> str:
    """The line between OpenNebula's error markers the host printed, else its last line."""
    lines = stderr.strip().splitlines()
    if ERROR_BEGIN in lines and ERROR_END in lines[lines.index(ERROR_BEGIN):]:
        start = lines.index(ERROR_BEGIN) + 1
        return " ".join(lines[start:lines.index(ERROR_END, start)])
    return lines[-1] if lines else "no output on stderr"


def on_host(cfg: Config, host: str, entry: str, args: Sequence[str],
            payload: str | None = None) -> str:
    result = config.ssh_runner(cfg.ssh, host).run_entry(entry, list(args), input=payload,
                                                         timeout=HOST_TIMEOUT, check=False)
    if result.returncode != 0:
        raise HostActionFailed(_reason(result.stderr), host)
    return str(result.stdout)


def _image(word: str, cfg: Config, field: str) -> str:
    return a.datastore_path(word, cfg.storage, field)[1]


def _copy(entry: str, args: Sequence[str]) -> None:
    """clone and ln: SRC(image) DST(disk) VMID DSID."""
    a.expect(list(args), ("SRC", "DST", "VMID", "DSID"), entry)
    cfg = config.load()
    vm_id, _ = a.number(args[2], "VMID"), a.number(args[3], "DSID")
    src = _image(args[0], cfg, "SRC")
    dst = a.disk_file(args[1], cfg.storage, "DST", vm_id)
    on_host(cfg, dst.host, "tm-host-" + entry.removeprefix("tm-"), [src, dst.path, str(vm_id)])


def clone(args: Sequence[str], stdin: TextIO) -> None:
    _copy("tm-clone", args)


def ln(args: Sequence[str], stdin: TextIO) -> None:
    _copy("tm-ln", args)


def mkimage(args: Sequence[str], stdin: TextIO) -> None:
    """mkimage SIZE FORMAT DST VMID DSID."""
    a.expect(list(args), ("SIZE", "FORMAT", "DST", "VMID", "DSID"), "tm-mkimage")
    cfg = config.load()
    vm_id, _ = a.number(args[3], "VMID"), a.number(args[4], "DSID")
    size, fmt = a.number(args[0], "DISK/SIZE"), a.new_disk_format(args[1])
    dst = a.disk_file(args[2], cfg.storage, "DST", vm_id)
    on_host(cfg, dst.host, "tm-host-mkimage", [str(size), fmt, dst.path, str(vm_id)])


def mkswap(args: Sequence[str], stdin: TextIO) -> None:
    """mkswap SIZE DST VMID DSID: common/mkswap's `mkimage SIZE swap DST VMID DSID`."""
    a.expect(list(args), ("SIZE", "DST", "VMID", "DSID"), "tm-mkswap")
    mkimage([args[0], "swap", *args[1:]], stdin)


def resize(args: Sequence[str], stdin: TextIO) -> None:
    """resize DST SIZE VMID."""
    a.expect(list(args)[:3], ("DST", "SIZE", "VMID"), "tm-resize")
    cfg = config.load()
    vm_id, size = a.number(args[2], "VMID"), a.number(args[1], "DISK/SIZE")
    dst = a.disk_file(args[0], cfg.storage, "DST", vm_id)
    on_host(cfg, dst.host, "tm-host-resize", [dst.path, str(size), str(vm_id)])


def _snap(entry: str, args: Sequence[str]) -> None:
    """snap_create, snap_delete, snap_revert DST SNAP_ID VMID DSID."""
    a.expect(list(args), ("DST", "SNAP_ID", "VMID", "DSID"), entry)
    cfg = config.load()
    vm_id, snap_id, _ = a.number(args[2], "VMID"), a.number(args[1], "SNAP_ID"), \
        a.number(args[3], "DSID")
    dst = a.disk_file(args[0], cfg.storage, "DST", vm_id)
    on_host(cfg, dst.host, "tm-host-" + entry.removeprefix("tm-"),
            [dst.path, str(snap_id), str(vm_id)])


def snap_create(args: Sequence[str], stdin: TextIO) -> None:
    _snap("tm-snap_create", args)


def snap_delete(args: Sequence[str], stdin: TextIO) -> None:
    _snap("tm-snap_delete", args)


def snap_revert(args: Sequence[str], stdin: TextIO) -> None:
    _snap("tm-snap_revert", args)


def mv(args: Sequence[str], stdin: TextIO) -> None:
    """mv SRC DST VMID DSID: as shared's, a disk or a directory the host already sees stays."""
    a.expect(list(args), ("SRC", "DST", "VMID", "DSID"), "tm-mv")
    cfg = config.load()
    vm_id, _ = a.number(args[2], "VMID"), a.number(args[3], "DSID")
    src = a.vm_file(args[0], cfg.storage, "SRC", vm_id)
    dst = a.vm_file(args[1], cfg.storage, "DST", vm_id)
    if dst.path != dst.vm_dir or src.path == dst.path:
        return
    on_host(cfg, dst.host, "tm-host-mv", [src.path, dst.path, str(vm_id)])


def delete(args: Sequence[str], stdin: TextIO) -> None:
    """delete DST VMID DSID."""
    a.expect(list(args), ("DST", "VMID", "DSID"), "tm-delete")
    cfg = config.load()
    vm_id, _ = a.number(args[1], "VMID"), a.number(args[2], "DSID")
    dst = a.vm_file(args[0], cfg.storage, "DST", vm_id)
    on_host(cfg, dst.host, "tm-host-delete", [dst.path, str(vm_id)])


def cpds(args: Sequence[str], stdin: TextIO) -> None:
    """cpds SRC(disk) DST(new image) SNAP_ID VMID DSID: disk save-as."""
    a.expect(list(args), ("SRC", "DST", "SNAP_ID", "VMID", "DSID"), "tm-cpds")
    cfg = config.load()
    vm_id, _ = a.number(args[3], "VMID"), a.number(args[4], "DSID")
    src = a.disk_file(args[0], cfg.storage, "SRC", vm_id)
    dst = _image(args[1], cfg, "DST")
    on_host(cfg, src.host, "tm-host-cpds", [src.path, dst, str(vm_id)])


def mvds(args: Sequence[str], stdin: TextIO) -> None:
    """mvds: a persistent image is used in place (ln), so nothing moves back (as qcow2's)."""
    a.expect(list(args), ("SRC", "DST", "VMID", "DSID"), "tm-mvds")
    cfg = config.load()
    a.disk_file(args[0], cfg.storage, "SRC", a.number(args[2], "VMID"))
    _image(args[1], cfg, "DST")


def migrate(args: Sequence[str], stdin: TextIO) -> None:
    """premigrate, postmigrate, failmigrate SRC_HOST DST_HOST VM_DIR VMID DSID: a shared
    datastore shows the VM directory on both hosts, so nothing is copied."""
    a.expect(list(args)[:5], ("SRC_HOST", "DST_HOST", "VM_DIR", "VMID", "DSID"), "tm-migrate")
    cfg = config.load()
    for word, field in ((args[0], "SRC_HOST"), (args[1], "DST_HOST")):
        a.split(word + ":/", field)
    a.vm_path(args[2], cfg.storage, "VM_DIR", a.number(args[3], "VMID"))
    a.number(args[4], "DSID")
