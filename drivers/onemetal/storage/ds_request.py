"""DS_DRIVER_ACTION_DATA as oned sends it to a datastore driver action, decoded and checked.

OpenNebula 6.8+ writes the base64 document on stdin (no trailing newline) and passes
the image id as argv[1]; older releases pass the document as argv[1] and the id as
argv[2]. Both are accepted. The document is attacker-influenced (image templates
are user input), so it is size-bounded, parsed by the hardened expat tree, and
every path read from it is checked against the datastore's BASE_PATH.
"""

from __future__ import annotations

import base64
import binascii
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from onemetal.config import StorageConfig
    from onemetal.opennebula.xmltree import Element

from onemetal.errors import InputError
from onemetal.opennebula import xmltree
from onemetal.record import value
from onemetal.storage.datastores import inside

# A datastore document is a few KB; 4 MiB of base64 leaves room for large templates
# while a hostile sender cannot make the action buffer without bound.
MAX_INPUT = 4 << 20
ROOT = "DS_DRIVER_ACTION_DATA"
_ID = re.compile(r"-1|[0-9]{1,10}")  # oned sends -1 where no image exists yet (stat)


@value
class Request:
    id: int
    root: Element

    def text(self, path: str) -> str:
        """The text at DS_DRIVER_ACTION_DATA/`path`, stripped; "" when absent."""
        return (self.root.findtext(path) or "").strip()

    def required(self, path: str) -> str:
        found = self.text(path)
        if not found:
            raise InputError("is missing or empty", path)
        return found

    def base_path(self, cfg: StorageConfig) -> str:
        """DATASTORE/BASE_PATH, normalized ('//' as oned writes it) and under datastores_dir."""
        return inside(self.required("DATASTORE/BASE_PATH"), cfg.datastores_dir,
                      "DATASTORE/BASE_PATH")

    def source(self, cfg: StorageConfig, field: str = "IMAGE/SOURCE") -> str:
        """An image file of this datastore: directly in BASE_PATH, as the stock rm requires."""
        base = self.base_path(cfg)
        path = inside(self.required(field), base, field)
        if path.rpartition("/")[0] != base:
            raise InputError(f"{path} is not an image file directly in {base}", field)
        return path

    def snapshot_id(self, field: str = "IMAGE/TARGET_SNAPSHOT") -> int:
        raw = self.required(field)
        if not raw.isdigit() or len(raw) > 10:
            raise InputError(f"{raw!r} is not a snapshot id (a non-negative integer)", field)
        return int(raw)


def _decode_base64(raw: str) -> bytes:
    # Ruby's Base64.encode64 (older MADs) wraps lines; a shell may add a newline; tolerate both.
    compact = "".join(raw.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("is not valid base64", ROOT) from None


def _image_id(raw: str) -> int:
    if not _ID.fullmatch(raw):
        raise InputError(f"{raw!r} is not an object id (a non-negative integer)", "ID")
    return int(raw)


def parse(data: str, raw_id: str) -> Request:
    if len(data) > MAX_INPUT:
        raise InputError(f"is larger than {MAX_INPUT} bytes", ROOT)
    image_id = _image_id(raw_id.strip())
    try:
        root = xmltree.parse(_decode_base64(data))
    except xmltree.XmlRefused as exc:
        raise InputError(f"is not a valid document: {exc}", ROOT) from None
    if root.tag != ROOT:
        raise InputError(f"the document's root is <{root.tag}>, want <{ROOT}>", ROOT)
    return Request(image_id, root)


def decode(args: list[str], stdin: TextIO) -> Request:
    """The request from argv and stdin in either of oned's two forms."""
    if len(args) >= 2:  # before 6.8: <base64> <id>
        return parse(args[0], args[1])
    if len(args) == 1:  # 6.8+: <id>, the document on stdin
        return parse(stdin.read(MAX_INPUT + 1), args[0])
    raise InputError("no id argument: oned runs '<action> <id>' with the document on stdin", "ID")
