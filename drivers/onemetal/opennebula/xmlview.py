"""Small helpers to read OpenNebula XML elements into checked Python values."""

from __future__ import annotations

from types import MappingProxyType

from onemetal.errors import InputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, TypeVar

    from lxml import etree

    T = TypeVar("T")


def expect_root(elem: "etree._Element", tag: str) -> None:
    if elem.tag != tag:
        raise InputError(f"expected a <{tag}> document, got <{elem.tag}>", tag)


def child(elem: "etree._Element", tag: str, field: str) -> "etree._Element":
    """A required sub-document (VM inside an action document, ...)."""
    found = elem.find(tag)
    if found is None:
        raise InputError("missing", f"{field}/{tag}")
    return found


def opt(elem: "etree._Element", tag: str) -> str | None:
    """Text of the child `tag` (stripped), or None when absent or empty."""
    found = elem.find(tag)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def req(elem: "etree._Element", tag: str, field: str) -> str:
    value = opt(elem, tag)
    if value is None:
        raise InputError("missing", f"{field}/{tag}")
    return value


def conv(elem: "etree._Element", tag: str, field: str,
         check: Callable[[str, str], T]) -> T | None:
    """Optional child converted by `check(value, field)`."""
    value = opt(elem, tag)
    return None if value is None else check(value, f"{field}/{tag}")


def attrs(elem: "etree._Element | None") -> Mapping[str, str]:
    """Leaf children of a template section as a read-only mapping (first occurrence wins)."""
    out: dict[str, str] = {}
    if elem is not None:
        for child in elem:
            if isinstance(child.tag, str) and len(child) == 0:
                out.setdefault(child.tag, (child.text or "").strip())
    return MappingProxyType(out)


def merged_attrs(elems: "list[etree._Element]") -> Mapping[str, str]:
    """Several occurrences of one section (the VNM payload repeats them) read as one."""
    out: dict[str, str] = {}
    for elem in elems:
        for key, value in attrs(elem).items():
            out.setdefault(key, value)
    return MappingProxyType(out)
