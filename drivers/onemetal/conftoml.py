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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Plain string methods, no regular expressions: compiling a few costs a host about 1 ms.
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
_CONTROL = frozenset(chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F))  # tab is allowed
_ENDS_TOKEN = " \t,]#"
_REFUSED = (False, None, "")


def _is_name(text: str) -> bool:
    return bool(text) and set(text) <= _BARE


def _is_comment(rest: str) -> bool:
    """What follows a header or a value: blanks, then nothing or a comment."""
    rest = rest.lstrip(" \t")
    return not rest or (rest[0] == "#" and not _CONTROL & set(rest))


def _scalar(text: str) -> tuple[bool, Any, str]:
    """(True, value, the text after it), or (False, None, "") when it is not in the subset."""
    if text.startswith('"'):
        end = text.find('"', 1)
        body = text[1:end]
        if end < 0 or "\\" in body or _CONTROL & set(body):
            return _REFUSED
        return True, body, text[end + 1:]
    length = next((i for i, c in enumerate(text) if c in _ENDS_TOKEN), len(text))
    token, rest = text[:length], text[length:]
    if token in ("true", "false"):
        return True, token == "true", rest
    whole, dot, fraction = (token[1:] if token[:1] in "+-" else token).partition(".")
    if not whole or not set(whole) <= _DIGITS or (whole[0] == "0" and len(whole) > 1):
        return _REFUSED
    if not dot:
        return True, int(token), rest
    if fraction and set(fraction) <= _DIGITS:
        return True, float(token), rest
    return _REFUSED


def _value(text: str) -> tuple[bool, Any, str]:
    if not text.startswith("["):
        return _scalar(text)
    items, rest = [], text[1:].lstrip(" \t")
    while not rest.startswith("]"):
        ok, item, rest = _scalar(rest)
        if not ok:
            return _REFUSED
        items.append(item)
        rest = rest.lstrip(" \t")
        if rest.startswith(","):
            rest = rest[1:].lstrip(" \t")
        elif not rest.startswith("]"):
            return _REFUSED
    return True, items, rest[1:]


def loads(text: str) -> dict[str, Any] | None:
    """The document as tomllib.loads gives it, or None when it is outside the subset."""
    root: dict[str, Any] = {}
    table = root
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        crlf = line.endswith("\r") and number < len(lines)  # a lone CR is not a line end
        line = (line[:-1] if crlf else line).lstrip(" \t")
        if not line or line[0] == "#":
            if not _is_comment(line):
                return None
        elif line[0] == "[":
            name, closed, rest = line[1:].partition("]")
            name = name.strip(" \t")
            if not closed or not _is_name(name) or not _is_comment(rest) or name in root:
                return None  # a table defined twice among them: tomllib names the error
            table = root[name] = {}
        else:
            key, equals, rest = line.partition("=")
            key = key.rstrip(" \t")
            ok, value, rest = _value(rest.lstrip(" \t"))
            if not equals or not _is_name(key) or key in table or not ok or not _is_comment(rest):
                return None
            table[key] = value
    return root
