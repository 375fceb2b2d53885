"""The plain subset of TOML that onemetal.conf is written in, read without importing tomllib.

tomllib brings typing, datetime and string along: about a quarter of what a host
entry may spend before its first command (bench/cold_start.py). A file made only of
`[section]` headers, `key = value` lines (a basic string without escapes, an
integer, a decimal float, true/false, a one-line array of those), comments and
blank lines is read here with the same result as tomllib.loads. Anything else,
including every malformed file, gives None, and the caller asks tomllib, which
reads it or says precisely what is wrong.

>>> loads('[net]\\nbridge = "br-mesh"  # the mesh\\nbfd = true\\n[nat]\\neip_groups = ["1", "ops"]\\n')
{'net': {'bridge': 'br-mesh', 'bfd': True}, 'nat': {'eip_groups': ['1', 'ops']}}
>>> loads("key = 'literal'") is None
True
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_COMMENT = r"(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?"
_NAME = r"[A-Za-z0-9_-]+"
_LINE = re.compile(rf"[ \t]*(?:\[[ \t]*(?P<section>{_NAME})[ \t]*\]|(?P<key>{_NAME})[ \t]*=[ \t]*"
                   rf"(?P<value>[^#]*?))?[ \t]*{_COMMENT}")
_STRING = r'"[^"\\\x00-\x08\x0a-\x1f\x7f]*"'
_INT = r"[+-]?(?:0|[1-9][0-9]*)"
_FLOAT = rf"{_INT}\.[0-9]+"
_SCALAR = re.compile(rf"(?P<s>{_STRING})|(?P<f>{_FLOAT})|(?P<i>{_INT})|(?P<b>true|false)")
_ITEM = re.compile(rf"[ \t]*(?:{_SCALAR.pattern})[ \t]*(?P<sep>,|(?=\]))")


def _scalar(match: re.Match[str]) -> Any:
    if match["s"] is not None:
        return match["s"][1:-1]
    if match["f"] is not None:
        return float(match["f"])
    if match["i"] is not None:
        return int(match["i"])
    return match["b"] == "true"


def _value(text: str) -> tuple[bool, Any]:
    """(True, value) for a value of the subset, else (False, None)."""
    whole = _SCALAR.fullmatch(text)
    if whole:
        return True, _scalar(whole)
    if not (text.startswith("[") and text.endswith("]")):
        return False, None
    items, pos, end = [], 1, len(text) - 1
    while text[pos:end].strip(" \t"):
        item = _ITEM.match(text, pos)
        if item is None:
            return False, None
        items.append(_scalar(item))
        pos = item.end()
    return True, items


def loads(text: str) -> dict[str, Any] | None:
    """The document as tomllib.loads gives it, or None when it is outside the subset."""
    root: dict[str, Any] = {}
    table = root
    for line in text.split("\n"):
        match = _LINE.fullmatch(line[:-1] if line.endswith("\r") else line)
        if match is None:
            return None
        if match["section"] is not None:
            if match["section"] in root:
                return None  # a table defined twice: tomllib names the error
            table = root[match["section"]] = {}
        elif match["key"] is not None:
            ok, value = _value(match["value"])
            if not ok or match["key"] in table:
                return None
            table[match["key"]] = value
    return root
