"""Decode what oned hands a driver: base64 and XML, refusing anything odd.

The parser resolves no entities, loads no DTD, reads nothing from the network
and refuses documents above a size limit, since the payload crosses a trust
boundary (VM templates are written by users).

It is the standard library's expat, building the small tree of xmltree.py, not
lxml: importing lxml alone costs hosts about twice a bare interpreter's start-up.
A DOCTYPE is refused as soon as expat meets it, which also refuses every entity
declaration; without one, expat knows only the five predefined entities and fails
on any other reference. expat never opens a file or a URL. The elements have the
reading API of lxml's (find, findall, findtext, tag, text, len, iteration), which is
all the views use; the frontend's own XML building keeps lxml.
"""

from __future__ import annotations

import base64
import binascii
from onemetal.errors import InputError
from onemetal.opennebula import xmltree
from onemetal.opennebula.xmlview import expect_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.opennebula.xmltree import Element

# A VM with hundreds of NICs and disks stays well under this; a larger payload is a mistake or an attack.
MAX_XML_BYTES = 4 * 1024 * 1024


def decode_base64(text: str | bytes, field: str = "stdin") -> bytes:
    """Strict base64: whitespace (the heredoc's trailing newline) is ignored, anything else is refused."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    compact = b"".join(raw.split())
    if not compact:
        raise InputError("empty, expected base64-encoded XML", field)
    if len(compact) > MAX_XML_BYTES * 4 // 3 + 4:
        raise InputError(f"larger than {MAX_XML_BYTES} bytes", field)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("not valid base64", field) from None


def parse_xml(data: bytes, field: str = "stdin") -> "Element":
    if len(data) > MAX_XML_BYTES:
        raise InputError(f"XML larger than {MAX_XML_BYTES} bytes", field)
    try:
        return xmltree.parse(data)
    except xmltree.XmlRefused as exc:
        raise InputError(str(exc), field) from None


def read_payload(text: str | bytes, field: str = "stdin", *, root: str | None = None
                 ) -> "Element":
    """Plain XML or base64 XML, as the different actions send it; optionally check the root tag."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    stripped = raw.strip()
    data = stripped if stripped.startswith(b"<") else decode_base64(stripped, field)
    element = parse_xml(data, field)
    if root is not None:
        expect_root(element, root)
    return element
