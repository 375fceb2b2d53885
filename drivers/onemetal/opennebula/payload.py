"""Decode what oned hands a driver: base64 and XML, refusing anything odd.

The parser resolves no entities, loads no DTD, reads nothing from the network
and refuses documents above a size limit, since the payload crosses a trust
boundary (VM templates are written by users).

It is the standard library's expat (through ElementTree's C tree builder), not
lxml: importing lxml alone costs hosts about twice a bare interpreter's start-up.
A document with a DOCTYPE is refused before it is parsed, which also refuses every
entity declaration; without one, expat knows only the five predefined entities and
fails on any other reference. expat never opens a file or a URL. The elements
have lxml's reading API (find, findall, findtext, tag, text, len, iteration),
which is all the views use; the frontend's own XML building keeps lxml.
"""

from __future__ import annotations

import base64
import binascii
from onemetal.errors import InputError
from onemetal.opennebula.xmlview import expect_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

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


# How much of a document the DOCTYPE check reads at a time: the prolog is short, and
# the check stops at the root element, so a hostile internal subset is never expanded.
_PROLOG_CHUNK = 4096


class _Prolog(Exception):
    """Raised inside expat to stop the DOCTYPE check; carries what it found."""


def _refuse_doctype(data: bytes, field: str) -> None:
    from xml.parsers import expat

    def doctype(*_: object) -> None:
        raise _Prolog("doctype")

    def root(*_: object) -> None:
        raise _Prolog("root")

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = root
    try:
        for start in range(0, len(data), _PROLOG_CHUNK):
            parser.Parse(data[start:start + _PROLOG_CHUNK], False)
        parser.Parse(b"", True)
    except _Prolog as found:
        if found.args[0] == "doctype":
            raise InputError("XML with a DOCTYPE is refused", field) from None
    except expat.ExpatError as exc:
        raise InputError(f"malformed XML ({exc})", field) from None


def parse_xml(data: bytes, field: str = "stdin") -> "Element":
    if len(data) > MAX_XML_BYTES:
        raise InputError(f"XML larger than {MAX_XML_BYTES} bytes", field)
    _refuse_doctype(data, field)
    from xml.etree.ElementTree import ParseError, XMLParser  # hosts only pay for it when parsing

    parser = XMLParser()  # the C tree builder; drops comments and processing instructions
    try:
        parser.feed(data)
        return parser.close()
    except ParseError as exc:
        raise InputError(f"malformed XML ({exc})", field) from None


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
