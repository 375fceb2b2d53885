"""The context action on the frontend (entry tm-context): `context <files...> DST VMID DSID`.

oned lists the context.sh it wrote in the VM's directory on the frontend first,
then the FILES_DS files (`path` or `path:name`, as common/context copies them).
The values of that context.sh and the files' contents go to the host in one
request, where storage/context_iso.py writes context.sh again and makes the ISO.
A file must be oned's own (beside context.sh) or lie in a datastore: a listed
path is never a way to read the frontend's other files into a guest.
"""

from __future__ import annotations

import base64
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, TextIO

from onemetal import config
from onemetal.errors import InputError
from onemetal.storage import context, tm_args
from onemetal.storage.context_iso import MAX_FILES_BYTES, file_name
from onemetal.storage.datastores import inside
from onemetal.storage.tm import on_host


def _read(path: str, field: str, budget: int) -> bytes:
    """A regular file's first budget+1 bytes. A symlink as the last component is refused
    (O_NOFOLLOW: its target was checked already) and a FIFO or device neither blocks the
    open (O_NONBLOCK) nor is read."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path} is not a regular file", field)
        data = f.read(budget + 1)
    if len(data) > budget:
        raise InputError(f"the context files exceed {MAX_FILES_BYTES >> 20} MiB", field)
    return data


def _source(word: str, own_dir: str, datastores_dir: str) -> tuple[str, str]:
    """(resolved path, name on the disk) of a FILES_DS word."""
    if word.startswith(("http://", "https://")):
        raise InputError(f"{word!r}: URLs are not fetched into a context disk", "CONTEXT/FILES_DS")
    path, _, name = word.partition(":")
    field = "CONTEXT/FILES_DS"
    if os.path.dirname(os.path.normpath(path)) == own_dir and ".." not in path.split("/"):
        checked, root = os.path.normpath(path), own_dir
    else:
        checked, root = inside(path, datastores_dir, field), datastores_dir
    # Checked again once resolved: a symlink in a datastore may point at any file of the
    # frontend, or at another tenant's.
    real = inside(os.path.realpath(checked), os.path.realpath(root), field)
    return real, file_name(name or os.path.basename(checked))


def request(words: Sequence[str], datastores_dir: str) -> str:
    """The JSON the host side reads: the CONTEXT values and the files, all read and checked."""
    own = words[0]
    if os.path.basename(own) != "context.sh" or not own.startswith("/") or ".." in own.split("/"):
        raise InputError(f"{own!r} is not the context.sh oned wrote", "context.sh")
    budget = MAX_FILES_BYTES
    text = _read(own, "context.sh", budget)
    budget -= len(text)
    try:
        values = context.parse(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("is not UTF-8", "context.sh") from None
    context.render(values)
    files = []
    for word in words[1:]:
        path, name = _source(word, os.path.dirname(os.path.normpath(own)), datastores_dir)
        data = _read(path, f"CONTEXT/FILES_DS/{name}", budget)
        budget -= len(data)
        files.append([name, base64.b64encode(data).decode("ascii")])
    return json.dumps({"context": values, "files": files})


def entry(args: Sequence[str], stdin: TextIO) -> None:
    if len(args) < 4:
        raise InputError(f"takes context.sh [files...] DST VMID DSID, got {len(args)} arguments",
                         "tm-context")
    cfg = config.load()
    vm_id, _ = tm_args.number(args[-2], "VMID"), tm_args.number(args[-1], "DSID")
    dst = tm_args.disk_file(args[-3], cfg.storage, "DST", vm_id)
    payload = request(list(args[:-3]), cfg.storage.datastores_dir)
    on_host(cfg, dst.host, "tm-host-context", [dst.path, str(vm_id)], payload)
