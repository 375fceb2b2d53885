"""Decode what oned hands a driver: base64 and XML, refusing anything odd.

The parser resolves no entities, loads no DTD, reads nothing from the network
and refuses documents above a size limit, since the payload crosses a trust
boundary (VM templates are written by users).
"""

from __future__ import annotations

import base64
import binascii
from onemetal.errors import InputError
from onemetal.opennebula.xmlview import expect_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lxml import etree

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


def parse_xml(data: bytes, field: str = "stdin") -> "etree._Element":
    from lxml import etree  # imported here: hosts only pay for it when parsing

    if len(data) > MAX_XML_BYTES:
        raise InputError(f"XML larger than {MAX_XML_BYTES} bytes", field)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"malformed XML ({exc.msg})", field) from None
    if root.getroottree().docinfo.doctype:
        raise InputError("XML with a DOCTYPE is refused", field)
    return root


def read_payload(text: str | bytes, field: str = "stdin", *, root: str | None = None
                 ) -> "etree._Element":
    """Plain XML or base64 XML, as the different actions send it; optionally check the root tag."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    stripped = raw.strip()
    data = stripped if stripped.startswith(b"<") else decode_base64(stripped, field)
    element = parse_xml(data, field)
    if root is not None:
        expect_root(element, root)
    return element
