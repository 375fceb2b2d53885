"""A read-only element tree built by expat, for hosts: what the views read, and nothing to import.

xml.etree.ElementTree costs a host about 2.5 ms to import (its path engine compiles
a tokenizer at import), more than expat takes to build this tree from a 50 KB VM.
Elements have the reading API of lxml's and ElementTree's that onemetal uses: `tag`,
`text` (the character data before the first child), `attrib`, `get`, `len`,
iteration, and `find`, `findall`, `findtext` over paths of plain tags ("TEMPLATE/NIC").
Comments and processing instructions are dropped, as ElementTree does.

The document is fed to expat in chunks; a DOCTYPE stops it at once (which also
refuses every entity declaration: without one, expat knows only the five predefined
entities and fails on any other reference). expat never opens a file or a URL.
"""

from __future__ import annotations

from xml.parsers import expat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

# How much expat reads at a time: a DOCTYPE ends the parse within the first chunk,
# so a hostile internal subset never has the rest of the document to expand into.
CHUNK = 16 * 1024
# As lxml's default: no document oned sends nests deeper, and a hostile one cannot make
# the views recurse without bound.
MAX_DEPTH = 256


class XmlRefused(ValueError):
    """The document is malformed or uses what hosts refuse; the message says which."""


class Element:
    __slots__ = ("tag", "attrib", "text", "_children")

    def __init__(self, tag: str, attrib: dict[str, str]) -> None:
        self.tag = tag
        self.attrib = attrib
        self.text: str | None = None
        self._children: list[Element] = []

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Element]:
        return iter(self._children)

    def __repr__(self) -> str:
        return f"<Element {self.tag} ({len(self._children)} children)>"

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def findall(self, path: str) -> list[Element]:
        """The elements at `path` (plain tags joined by "/"), in document order."""
        found = [self]
        for tag in path.split("/"):
            if not tag or tag in (".", "..", "*") or any(c in tag for c in "[]@{}()"):
                raise ValueError(f"only paths of plain tags are supported, not {path!r}")
            found = [c for e in found for c in e._children if c.tag == tag]
        return found

    def find(self, path: str) -> Element | None:
        found = self.findall(path)
        return found[0] if found else None

    def findtext(self, path: str, default: str | None = None) -> str | None:
        found = self.find(path)
        return default if found is None else found.text or ""


def _doctype(*_: object) -> None:
    raise XmlRefused("XML with a DOCTYPE is refused")


def parse(data: bytes) -> Element:
    """The document's root element; XmlRefused for anything malformed or refused."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    stack: list[Element] = []
    roots: list[Element] = []
    text: list[str] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise XmlRefused(f"XML nested deeper than {MAX_DEPTH} levels is refused")
        element = Element(tag, attrib)
        if stack:
            parent = stack[-1]
            if not parent._children and text:
                parent.text = "".join(text)
            parent._children.append(element)
        else:
            roots.append(element)
        stack.append(element)
        text.clear()

    def end(tag: str) -> None:
        element = stack.pop()
        if not element._children and text:
            element.text = "".join(text)
        text.clear()  # data after a child is its tail, which nothing reads

    parser.StartDoctypeDeclHandler = _doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        for offset in range(0, len(data), CHUNK):
            parser.Parse(data[offset:offset + CHUNK], False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise XmlRefused(f"malformed XML ({exc})") from None
    return roots[0]
