"""The context disk, built on the host that runs the VM (entry tm-host-context).

The frontend sends the VM's CONTEXT values (read from the context.sh oned wrote)
and the FILES_DS files as JSON on stdin; here context.sh is written again from the
values (storage/context.py), with ETH<n>_MTU from this host's overlay MTU, and the
ISO is made as OpenNebula's context action makes it: volume CONTEXT, Joliet and
Rock Ridge, written beside its name and renamed into place.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence, TextIO

from onemetal import config
from onemetal.errors import InputError
from onemetal.run import Runner
from onemetal.storage import context, tm_args
from onemetal.storage.tm_host import open_vm_dir

# A context disk carries scripts and keys, not images: what the frontend reads and sends.
MAX_FILES_BYTES = 16 << 20
ISO_TIMEOUT = 120.0


def file_name(name: object) -> str:
    """The name a file gets at the ISO's root: one plain path component."""
    if (not isinstance(name, str) or not name or name in (".", "..", "context.sh")
            or any(c in name for c in "/\0\n")):
        raise InputError(f"{name!r} is not a file name for the context disk", "CONTEXT/FILES_DS")
    return name


def files(raw: Any) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for entry in raw if isinstance(raw, list) else [None]:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
            raise InputError("must be a list of [name, base64] pairs", "files")
        try:
            out.append((file_name(entry[0]), base64.b64decode(entry[1], validate=True)))
        except binascii.Error:
            raise InputError("is not base64", f"CONTEXT/FILES_DS/{entry[0]}") from None
    if len({name for name, _ in out}) != len(out):
        raise InputError("names one file twice", "CONTEXT/FILES_DS")
    return out


def request(stdin: TextIO) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    try:
        data = json.loads(stdin.read(MAX_FILES_BYTES * 2))
    except ValueError:
        raise InputError("is not the JSON the frontend sends", "stdin") from None
    values = data.get("context") if isinstance(data, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise InputError("must map names to text", "context")
    return values, files(data.get("files", []))


def overlay_mtu(cfg: config.Config) -> int:
    # Only a VM with NICs pays for this, and only for the peer list: not for the OVS modules.
    from onemetal.net import mtu, peers

    return mtu.mesh_overlay_mtu(peers.load(cfg.core.state_dir),
                                Runner(timeout=cfg.core.command_timeout), cfg.net.underlay_mtu)


def make_iso(directory: str, dst: str, timeout: float) -> None:
    partial = dst + ".tmp"
    Runner(timeout=timeout, where="tm").run(
        ["genisoimage", "-quiet", "-o", partial, "-V", "CONTEXT", "-J", "-R", directory])
    os.replace(partial, dst)


def entry(args: Sequence[str], stdin: TextIO) -> None:
    """context DST VMID, the values and files on stdin: DST becomes the context ISO."""
    tm_args.expect(list(args), ("DST", "VMID"), "tm-host-context")
    cfg = config.load()
    target = tm_args.disk_path(args[0], cfg.storage, "DST", tm_args.number(args[1], "VMID"))
    values, extra = request(stdin)
    text = context.render(values)  # every key and value checked before the MTU is looked up
    if any(context.nic_keys(values)):
        text = context.render(context.with_mtu(values, overlay_mtu(cfg)))
    open_vm_dir(target, cfg)
    import tempfile  # with shutil, random, bz2 and lzma: not for the frontend's tm-context

    with tempfile.TemporaryDirectory(prefix="onemetal-context-") as work:
        with open(os.path.join(work, "context.sh"), "w", encoding="utf-8") as f:
            f.write(text)
        for name, data in extra:
            with open(os.path.join(work, name), "wb") as f:
                f.write(data)
        make_iso(work, target.path, ISO_TIMEOUT)
