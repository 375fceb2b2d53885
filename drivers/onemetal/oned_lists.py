"""The driver-name lists of oned.conf's TM_MAD and DATASTORE_MAD sections.

A TM_MAD_CONF or DS_MAD_CONF entry (our managed block) is not enough: one_tm and one_datastore
load only the drivers named in their `-d` list, and one_datastore monitors a system datastore
only when its TM is in its `-s` list. Those lists sit in sections the operator owns, so install
edits exactly one comma-separated token per list, records which ones it extended, and uninstall
takes `onemetal` out of those only: a name the operator listed himself stays.
"""

from __future__ import annotations

import re
from typing import Sequence

from onemetal.safefiles import InstallError

DRIVER = "onemetal"
# (section, option, long option one_tm/one_datastore also accept through GetoptLong)
LISTS = (("TM_MAD", "-d", "--tm-types"), ("DATASTORE_MAD", "-d", "--ds-types"),
         ("DATASTORE_MAD", "-s", "--system-ds-types"))
KEYS = tuple(f"{section} {flag}" for section, flag, _ in LISTS)
FIELD = "oned.conf"


def _section(text: str, name: str) -> tuple[int, str]:
    """Offset and body (comments blanked, offsets kept) of the one uncommented `NAME = [ ... ]`."""
    starts = [m.end() for m in re.finditer(rf"^[ \t]*{name}[ \t]*=[ \t]*\[", text, re.M | re.I)]
    if len(starts) != 1:
        found = "not found" if not starts else f"found {len(starts)} times"
        raise InstallError(f"{name} section {found}; {DRIVER} cannot be added to its driver "
                           "lists: fix the section by hand, then rerun", FIELD)
    body: list[str] = []
    quoted = comment = False
    for char in text[starts[0]:]:
        if char == "\n":
            comment = False
        elif comment or (char == "#" and not quoted):
            comment, char = True, " "  # a quote or a bracket in a comment means nothing
        elif char == '"':
            quoted = not quoted
        elif char == "]" and not quoted:
            return starts[0], "".join(body)
        body.append(char)
    raise InstallError(f"{name} section has no closing ']': fix it by hand, then rerun", FIELD)


def _arguments(text: str, name: str) -> tuple[int, int]:
    """Span of the quoted ARGUMENTS value inside section `name`."""
    start, body = _section(text, name)
    found = list(re.finditer(r'(?<![A-Za-z0-9_])ARGUMENTS\s*=\s*"([^"\n]*)"', body, re.I))
    if len(found) != 1:
        raise InstallError(f"{name} section needs exactly one quoted ARGUMENTS on one line "
                           f"(found {len(found)}): fix it by hand, then rerun", FIELD)
    return start + found[0].start(1), start + found[0].end(1)


def _list_span(text: str, section: str, flag: str, long: str) -> tuple[int, int]:
    """Span of the token following `flag` in the section's ARGUMENTS: the one list to edit."""
    base, end = _arguments(text, section)
    tokens = list(re.finditer(r"\S+", text[base:end]))
    where = f"{section} ARGUMENTS"
    for t in tokens:
        word = t.group().split("=", 1)[0]
        glued = t.group() != flag and t.group().startswith(flag)
        if glued or (word.startswith("--") and len(word) > 2 and long.startswith(word)):
            raise InstallError(f"{where} spells {flag} as {t.group()!r}; only '{flag} a,b,...' can "
                               f"be edited safely: add {DRIVER} by hand", FIELD)
    at = [i for i, t in enumerate(tokens) if t.group() == flag]
    if len(at) != 1 or at[0] + 1 >= len(tokens) or tokens[at[0] + 1].group().startswith("-"):
        problem = "has no" if not at else "has several" if len(at) > 1 else "has an empty"
        raise InstallError(f"{where} {problem} {flag} list {DRIVER} can be added to: "
                           "fix it by hand, then rerun", FIELD)
    value = tokens[at[0] + 1]
    return base + value.start(), base + value.end()


def _spans(text: str) -> dict[str, tuple[int, int]]:
    """Every list located, or an error before anything is changed."""
    return {key: _list_span(text, section, flag, long)
            for key, (section, flag, long) in zip(KEYS, LISTS)}


def _names(token: str) -> list[str]:
    return [name.strip() for name in token.split(",")]  # as one_tm/one_datastore split it


def _edit(text: str, edits: dict[tuple[int, int], str]) -> str:
    for (start, end), token in sorted(edits.items(), reverse=True):  # last first: spans stay valid
        text = text[:start] + token + text[end:]
    return text


def with_driver(text: str) -> tuple[str, list[str]]:
    """`text` with DRIVER at the end of every list lacking it, and the keys of those lists."""
    spans = _spans(text)
    added = [key for key, (s, e) in spans.items() if DRIVER not in _names(text[s:e])]
    edits = {spans[key]: text[slice(*spans[key])] + "," + DRIVER for key in added}
    return _edit(text, edits), added


def _drop(token: str) -> str:
    names = token.split(",")
    at = [n.strip() for n in names].index(DRIVER)
    return ",".join(names[:at] + names[at + 1:])


def without_driver(text: str, keys: Sequence[str]) -> tuple[str, list[str]]:
    """`text` with DRIVER taken out of the lists install extended (`keys`), and those it changed."""
    spans = _spans(text)
    removed = [key for key in keys if DRIVER in _names(text[slice(*spans[key])])]
    edits = {spans[key]: _drop(text[slice(*spans[key])]) for key in removed}
    return _edit(text, edits), removed


def check_keys(value: object, where: str) -> list[str]:
    """The manifest's record (oneadmin can edit it): only keys of LISTS."""
    if not isinstance(value, list) or any(k not in KEYS for k in value):
        raise InstallError(f"oned_lists {value!r} is not a list of {KEYS}: refused", where)
    return list(value)


def describe(keys: Sequence[str], verb: str) -> list[str]:
    return [f"~ oned.conf {key}: {verb} {DRIVER}" for key in keys]
