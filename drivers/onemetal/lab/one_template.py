"""oned's Template, as the API stand-in needs it for one.vm.update: parse, merge, replace, XML.

Follows OpenNebula's source: src/parsers/template_parser.l and template_syntax.y
(KEY = "VALUE" with only \\" unescaped, KEY = VALUE unquoted, KEY = followed by a
newline for an empty value, KEY = [ A = "x", B = y ] vectors with their keys in
upper case, # comments, a value holding "]]>" refused), Template::parse_str_or_xml
(text starting with "<" is read as XML: an element with element children is a
vector, any other a single attribute), trim_attributes, Template::merge (each name
given replaces every attribute of that name; an empty vector is dropped) and the
XML oned writes: attributes in a multimap ordered by name, repeats in insertion
order, vector keys in a sorted map, every value in CDATA.
"""

from __future__ import annotations

import re
from typing import Union

from lxml import etree

Value = Union[str, dict[str, str]]
Attribute = tuple[str, Value]

_NAME = re.compile(r"[A-Za-z0-9_]+")
_BLANKS = re.compile(r"[ \t]*")
_SPACE = re.compile(r"[ \t\n]*")
_QUOTED = re.compile(r'"((?:\\"|[^"])*)"')
_UNQUOTED = re.compile(r'[^=# \t\n,\[\]]+')


class TemplateError(ValueError):
    """The text is not a template oned would accept (its message follows oned's "Parse error")."""


def _value(text: str, pos: int) -> tuple[str, int]:
    """A value after '=' (flex's VALUE state): quoted, else unquoted; "]]>" aborts the parse."""
    if "]]>" in text[pos:].split("\n", 1)[0]:
        raise TemplateError("Parse error: CDATA end in a value")
    match = _QUOTED.match(text, pos) or _UNQUOTED.match(text, pos)
    if not match:
        raise TemplateError(f"Parse error: no value at offset {pos}")
    raw = match.group(1) if match.re is _QUOTED else match.group(0)
    return raw.replace('\\"', '"'), match.end()


def _vector(text: str, pos: int) -> tuple[dict[str, str], int]:
    values: dict[str, str] = {}
    pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        return values, pos + 1
    while True:
        key = _NAME.match(text, pos)
        equal = _BLANKS.match(text, key.end()).end() if key else pos  # type: ignore[union-attr]
        if not key or not text.startswith("=", equal):
            raise TemplateError(f"Parse error: expected KEY = VALUE in a vector at offset {pos}")
        pos = _BLANKS.match(text, equal + 1).end()  # type: ignore[union-attr]
        value, pos = _value(text, pos)
        values.setdefault(key.group(0).upper(), value)  # std::map::insert keeps the first
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", pos):
            return values, pos + 1
        else:
            raise TemplateError(f"Parse error: expected ',' or ']' at offset {pos}")


def parse_text(text: str) -> list[Attribute]:
    out: list[Attribute] = []
    pos = 0
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            return out
        if text[pos] == "#":
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end + 1
            continue
        name = _NAME.match(text, pos)
        after = _BLANKS.match(text, name.end()).end() if name else pos  # type: ignore[union-attr]
        if not name or not text.startswith("=", after):
            raise TemplateError(f"Parse error: expected NAME = at offset {pos}")
        pos = _BLANKS.match(text, after + 1).end()  # type: ignore[union-attr]
        if pos >= len(text) or text[pos] == "\n":
            out.append((name.group(0), ""))
        elif text[pos] == "[":
            vector, pos = _vector(text, pos + 1)
            out.append((name.group(0), vector))
        else:
            value, pos = _value(text, pos)
            out.append((name.group(0), value))


def parse_xml(text: str) -> list[Attribute]:
    try:
        root = etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        raise TemplateError("Parse error: XML Template malformed.") from None
    out: list[Attribute] = []
    for elem in root.iterchildren(tag=etree.Element):
        children = list(elem.iterchildren(tag=etree.Element))
        if children:
            out.append((elem.tag, {c.tag: c.text or "" for c in children}))
        else:
            out.append((elem.tag, elem.text or ""))
    return out


def _trimmed(attr: Attribute) -> Attribute:
    name, value = attr
    if isinstance(value, dict):
        return name, {k: v.strip() for k, v in value.items()}
    return name, value.strip()


def parse(text: str) -> list[Attribute]:
    """Template::parse_str_or_xml, then trim_attributes."""
    attrs = parse_xml(text) if text.startswith("<") else parse_text(text)
    return [_trimmed(a) for a in attrs]


def ordered(attrs: list[Attribute]) -> list[Attribute]:
    """The multimap's order: by name, repeats as inserted (sorted() is stable)."""
    return sorted(attrs, key=lambda a: a[0])


def merge(current: list[Attribute], new: list[Attribute]) -> list[Attribute]:
    names = {name for name, _ in new}
    kept = [a for a in current if a[0] not in names]
    return ordered(kept + [a for a in new if not (isinstance(a[1], dict) and not a[1])])


def from_element(elem: "etree._Element") -> list[Attribute]:
    return parse_xml(etree.tostring(elem, encoding="unicode"))


def to_element(tag: str, attrs: list[Attribute]) -> "etree._Element":
    top = etree.Element(tag)
    for name, value in ordered(attrs):
        elem = etree.SubElement(top, name)
        if isinstance(value, dict):
            for key in sorted(value):
                etree.SubElement(elem, key).text = etree.CDATA(value[key])
        else:
            elem.text = etree.CDATA(value)
    return top
