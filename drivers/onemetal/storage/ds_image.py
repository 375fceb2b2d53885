"""qemu-img work of the datastore driver: what an image file is, creating and converting one.

qemu-img runs through onemetal.run with a deadline. An image from a user may be a
qcow2 whose header names a backing or data file anywhere on this machine, or a vmdk
whose extents are other files; such an image is refused, or a registered image (or
its conversion) could read a file of the frontend.
"""

from __future__ import annotations

from onemetal.errors import InputError
from onemetal.record import value
from onemetal.run import Runner

FORMATS = ("raw", "qcow2")
# qemu-img info of a crafted image can take unbounded memory and CPU (CVE-2015-5162,
# OSSN-0057): as OpenStack does, it runs with 1 GiB of address space and 30 s of CPU.
LIMITS = ("prlimit", f"--as={1 << 30}", "--cpu=30", "--")
# Reading a header is quick; a create or a convert of a large image is not.
INFO_TIMEOUT = 60.0
WRITE_TIMEOUT = 3600.0
MB = 1 << 20


@value
class ImageInfo:
    format: str
    virtual_mb: int
    others: tuple[str, ...]  # files the image names besides itself: backing, data-file, extents


def _named_files(data: object) -> set[str]:
    """Every file name in qemu-img's JSON (a qcow2 backing or data-file, vmdk extents, ...)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, item in data.items():
            if key in ("filename", "backing-filename", "full-backing-filename", "data-file") \
                    and isinstance(item, str):
                found.add(item)
            else:
                found |= _named_files(item)
    elif isinstance(data, list):
        for item in data:
            found |= _named_files(item)
    return found


def read(path: str, field: str, chain: bool = False, where: str = "") -> list[dict]:
    """qemu-img's JSON of `path` (with --backing-chain: of every file of its chain), read
    under LIMITS and with -U, since a running VM may hold the image open."""
    argv = [*LIMITS, "qemu-img", "info", "-U", "--output=json",
            *(["--backing-chain"] if chain else []), path]
    result = Runner(where=where).run(argv, timeout=INFO_TIMEOUT, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"qemu-img cannot read {path}: {reason}", field)
    import json  # its decoder: only once qemu-img has answered

    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise InputError(f"qemu-img's report on {path} is not JSON", field) from None
    return [d for d in (data if isinstance(data, list) else [data]) if isinstance(d, dict)]


def named_files(data: dict) -> set[str]:
    """The files one chain element names besides itself, as absolute paths."""
    own = str(data.get("filename", ""))
    base = own.rpartition("/")[0] or "/"
    return {f if f.startswith("/") else f"{base}/{f}" for f in _named_files(data) if f != own}


def info(path: str, field: str) -> ImageInfo:
    """The image's format (luks reported as raw, as the stock driver does) and virtual size."""
    [data] = read(path, field)[:1] or [{}]
    fmt = str(data.get("format", ""))
    if not fmt:
        raise InputError(f"unknown image format of {path}", field)
    size = int(data.get("virtual-size", 0))
    others = tuple(sorted(f for f in _named_files(data) if f != path))
    return ImageInfo("raw" if fmt == "luks" else fmt, -(-size // MB), others)


def checked_format(raw: str, field: str) -> str:
    fmt = raw.strip().lower()
    if fmt not in FORMATS:
        raise InputError(f"{raw!r} is not a supported format ({', '.join(FORMATS)})", field)
    return fmt


def create(path: str, fmt: str, size_mb: int) -> None:
    Runner().run(["qemu-img", "create", "-q", "-f", fmt, path, f"{size_mb}M"],
                 timeout=WRITE_TIMEOUT)


def convert(src: str, dst: str, fmt: str, src_fmt: str) -> None:
    """`src`, read as `src_fmt` (never probed again: the format checked is the one read), as
    `fmt` in `dst`."""
    Runner().run(["qemu-img", "convert", "-f", src_fmt, "-O", fmt, src, dst],
                 timeout=WRITE_TIMEOUT)


def create_overlay(backing: str, path: str) -> None:
    """A qcow2 over `backing`, as the stock snap_revert makes the new active snapshot."""
    Runner().run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "backing_fmt=qcow2",
                  "-b", backing, path], timeout=INFO_TIMEOUT)
