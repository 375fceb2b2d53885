"""The datastore driver `onemetal` (DS_MAD): cp, mkfs, clone, stat, monitor, export on the frontend.

Semantics and replies are those of OpenNebula's stock fs driver: a new image gets
the source <BASE_PATH>/<md5 of "time:id">, cp and clone print `<SOURCE> <FORMAT>`,
mkfs prints `<SOURCE>`, stat the size in MB, monitor USED_MB/FREE_MB/TOTAL_MB lines,
export an IMPORT_INFO element. Unlike the stock driver, every action that writes
opens the write-gate (storage/datastores.gate) before it creates anything, so an
unmounted share is never filled from the frontend's own disk. rm and the snapshot
actions are in ds_snap.py.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from onemetal.config import StorageConfig
    from onemetal.storage.ds_request import Request

from onemetal.errors import InputError
from onemetal.storage import datastores, ds_fetch, ds_image
from onemetal.storage.ds_request import decode

MB = 1 << 20
# No image oned can describe is larger (16 TiB): a bound before any arithmetic on SIZE.
MAX_SIZE_MB = 16 << 20


def new_source(base: str, image_id: int, attempt: int = 0) -> str:
    """<BASE_PATH>/<hash> as the stock generate_image_path makes it (md5 of "<epoch>:<id>\\n")."""
    try:  # CPython's own md5: hashlib loads OpenSSL first (about 3 ms) to hash 20 bytes
        from _md5 import md5
    except ImportError:
        from hashlib import md5

    text = f"{int(time.time())}:{image_id}" + (f":{attempt}" if attempt else "")
    return f"{base}/{md5((text + chr(10)).encode(), usedforsecurity=False).hexdigest()}"


def _unused(base: str, image_id: int) -> str:
    """A new source that no file holds yet: the stock driver would overwrite one made the same second."""
    for attempt in range(100):
        path = new_source(base, image_id, attempt)
        if not os.path.lexists(path):
            return path
    raise InputError(f"no unused image name in {base}", "IMAGE/SOURCE")


def _size_mb(req: Request, field: str = "IMAGE/SIZE") -> int:
    raw = req.required(field)
    if not raw.isdigit() or not 0 < int(raw) <= MAX_SIZE_MB:
        raise InputError(f"{raw!r} is not a size in MB (1..{MAX_SIZE_MB})", field)
    return int(raw)


def _free_mb(base: str, cfg: StorageConfig) -> int:
    """Free MB where `base` is or will be (its nearest existing parent before the first image),
    each look within the deadline."""
    from onemetal.storage import probe  # select: only the actions that look

    path = base
    while True:
        try:
            return probe.space(path, cfg.probe_timeout)["free"] // MB
        except probe.ProbeFailed:
            if path == "/":
                raise
            path = os.path.dirname(path)


def _room_for(base: str, size_mb: int, field: str, cfg: StorageConfig) -> int:
    """The free MB, refusing what cannot fit; the probe also fails fast on a share that does
    not answer, before this process touches it."""
    free = _free_mb(base, cfg)
    if size_mb > free:
        raise InputError(f"{size_mb} MB is more than the {free} MB free in {base}", field)
    return free


def _remove(path: str) -> None:
    if os.path.lexists(path):
        os.unlink(path)


def _wanted_format(req: Request) -> str:
    """DATASTORE/TEMPLATE/DRIVER when cp converts to it (the stock CONVERT rules), else ""."""
    driver = req.text("DATASTORE/TEMPLATE/DRIVER").lower()
    convert = (req.text("DATASTORE/TEMPLATE/CONVERT") or "yes").lower()
    no_convert = req.text("IMAGE/TYPE") in ("1", "CDROM") or req.text("DATASTORE/TYPE") in ("2", "FILE_DS")
    return driver if convert == "yes" and not no_convert and driver in ds_image.FORMATS else ""


def _settle(req: Request, path: str) -> str:
    """The imported file's format after the stock driver's conversion to DRIVER."""
    found = self_contained(path, ds_fetch.FIELD)
    wanted = _wanted_format(req)
    if wanted and found.format != wanted:
        ds_image.convert(path, path + ".tmp", wanted, found.format)
        os.replace(path + ".tmp", path)
        return wanted
    return found.format


def self_contained(path: str, field: str) -> ds_image.ImageInfo:
    """What qemu-img reads in `path`, which must name no other file: the guest of a VM
    using a raw image may have written a qcow2 header into it, naming any file oneadmin
    can read (another tenant's disk) as its backing file."""
    found = ds_image.info(path, field)
    if found.others:
        raise InputError(f"the image names other files ({', '.join(found.others)}): import it "
                         "as one self-contained file", field)
    return found


def _copy(src: str, dst: str) -> None:
    # by hand: shutil would import bz2, lzma and fnmatch for this loop
    with open(src, "rb") as inp, open(dst, "xb") as out:
        while chunk := inp.read(MB):
            out.write(chunk)


def cp(args: list[str], stdin: TextIO) -> str:
    req, cfg = decode(args, stdin), datastores.settings()
    base = req.base_path(cfg)
    url = ds_fetch.is_url(req.required(ds_fetch.FIELD))
    src = ds_fetch.checked_url(req) if url else ds_fetch.local_path(req, cfg)
    dst = new_source(base, req.id)
    datastores.gate(dst, cfg)
    local_mb = 0 if url else -(-os.path.getsize(src) // MB)
    free = _room_for(base, local_mb, ds_fetch.FIELD, cfg)
    dst = _unused(base, req.id)
    os.makedirs(base, exist_ok=True)
    try:
        if url:
            ds_fetch.download(src, dst, cfg, free)
        else:
            _copy(src, dst)
        ds_fetch.verify(req, dst)
        fmt = _settle(req, dst)
    except BaseException:
        _remove(dst)
        _remove(dst + ".tmp")
        raise
    return f"{dst} {fmt}"


def mkfs(args: list[str], stdin: TextIO) -> str:
    req, cfg = decode(args, stdin), datastores.settings()
    base = req.base_path(cfg)
    dst = new_source(base, req.id)
    if req.required("IMAGE/FORMAT") == "save_as":
        return dst  # the stock driver only names it: the VM's disk is saved there later
    fmt = ds_image.checked_format(req.text("IMAGE/FORMAT"), "IMAGE/FORMAT")
    size = _size_mb(req)
    if req.text("IMAGE/FS"):
        raise InputError("making a file system in the image is not supported: leave FS empty",
                         "IMAGE/FS")
    datastores.gate(dst, cfg)
    _room_for(base, size, "IMAGE/SIZE", cfg)
    dst = _unused(base, req.id)
    os.makedirs(base, exist_ok=True)
    try:
        ds_image.create(dst, fmt, size)
    except BaseException:
        _remove(dst)
        raise
    return dst


def clone(args: list[str], stdin: TextIO) -> str:
    req, cfg = decode(args, stdin), datastores.settings()
    base = req.base_path(cfg)
    src = datastores.inside(req.required("IMAGE/PATH"), cfg.datastores_dir, "IMAGE/PATH")
    if datastores.datastore_id(src, cfg) is None or not os.path.isfile(src):
        raise InputError(f"{src} is not an image file of a datastore", "IMAGE/PATH")
    driver = req.text("DATASTORE/TEMPLATE/DRIVER").lower()
    dst = new_source(base, req.id)
    datastores.gate(dst, cfg)
    _room_for(base, -(-os.path.getsize(src) // MB), "IMAGE/PATH", cfg)
    found = self_contained(src, "IMAGE/PATH")
    dst = _unused(base, req.id)
    os.makedirs(base, exist_ok=True)
    try:
        if driver in ds_image.FORMATS:
            ds_image.convert(src, dst, driver, found.format)
        else:
            _copy(src, dst)
        fmt = driver if driver in ds_image.FORMATS else found.format
    except BaseException:
        _remove(dst)
        raise
    return f"{dst} {fmt}"


def _tree_mb(path: str) -> int:
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except FileNotFoundError:
                continue  # gone while walking, as du skips it
    return -(-total // MB)


def stat(args: list[str], stdin: TextIO) -> str:
    req, cfg = decode(args, stdin), datastores.settings()
    raw = req.required(ds_fetch.FIELD)
    if ds_fetch.is_url(raw):
        return str(ds_fetch.remote_size_mb(ds_fetch.checked_url(req), cfg))
    path = ds_fetch.local_path(req, cfg, allow_dir=True)
    if os.path.isdir(path):  # du -sb in the stock driver
        from onemetal.storage import probe

        # A user may name any directory, "/" too: the walk is bounded in time.
        try:
            return str(probe.in_child(lambda: _tree_mb(path), cfg.probe_timeout, path))
        except probe.ProbeTimeout:
            raise InputError(f"{path} is too large to measure within storage.probe_timeout "
                             f"({cfg.probe_timeout:g} s)", ds_fetch.FIELD) from None
        except probe.ProbeFailed as exc:
            raise InputError(f"cannot measure {path}: {exc}", ds_fetch.FIELD) from None
    return str(ds_image.info(path, ds_fetch.FIELD).virtual_mb)


def monitor(args: list[str], stdin: TextIO) -> str:
    """The stock monitor's lines; the share is touched only by children with a deadline."""
    req, cfg = decode(args, stdin), datastores.settings()
    base = req.base_path(cfg)
    datastores.gate(base, cfg)
    from onemetal.storage import probe

    found = {k: -(-v // MB)  # df rounds up
             for k, v in probe.space(base, cfg.probe_timeout, create=True).items()}
    return f"USED_MB={found['used']}\nFREE_MB={found['free']}\nTOTAL_MB={found['total']}"


def export(args: list[str], stdin: TextIO) -> str:
    req, cfg = decode(args, stdin), datastores.settings()
    src = req.source(cfg)
    size = _size_mb(req)
    if not os.path.isfile(src):
        raise InputError(f"{src} does not exist", "IMAGE/SOURCE")
    fmt = ds_image.info(src, "IMAGE/SOURCE").format
    return (f"<IMPORT_INFO><IMPORT_SOURCE><![CDATA[{src}]]></IMPORT_SOURCE>"
            f"<MD5><![CDATA[{ds_fetch.digest(src)}]]></MD5><SIZE><![CDATA[{size}]]></SIZE>"
            f"<FORMAT><![CDATA[{fmt}]]></FORMAT><DISPOSE>NO</DISPOSE></IMPORT_INFO>")
