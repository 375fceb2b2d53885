"""A swap signature written in place of mkswap(8), which lives in /usr/sbin, off oneadmin's PATH.

The Linux swap header (version 1, as mkswap writes it): in the first page, after 1024 bytes
left for a boot block, version, last page, number of bad pages, a UUID and a label; the
page ends with the magic `SWAPSPACE2`. The guest's kernel checks nothing more.
"""

from __future__ import annotations

import os
import struct
import uuid

PAGE = 4096  # the guest's (x86-64, arm64 4K) page size, whatever the host uses
MAGIC = b"SWAPSPACE2"


def header(size_bytes: int, label: bytes = b"") -> bytes:
    last_page = size_bytes // PAGE - 1
    if last_page < 9:  # mkswap's minimum: 10 pages
        raise ValueError(f"{size_bytes} bytes is too small for swap")
    fields = struct.pack("<III16s16s", 1, last_page, 0, uuid.uuid4().bytes, label[:16])
    page = bytearray(PAGE)
    page[1024:1024 + len(fields)] = fields
    page[PAGE - len(MAGIC):] = MAGIC
    return bytes(page)


def write_signature(path: str) -> None:
    """Turn the raw file `path` into a swap area over its whole size."""
    with open(path, "r+b") as f:
        f.write(header(os.fstat(f.fileno()).st_size))
        f.flush()
        os.fsync(f.fileno())
