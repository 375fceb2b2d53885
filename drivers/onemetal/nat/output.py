"""Lists and records as onenat prints them: a table, or -j JSON, or -x XML in OpenNebula's style."""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from lxml import etree

Row = Mapping[str, object]


def table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def as_json(rows: Sequence[Row]) -> str:
    return json.dumps(list(rows), indent=1, sort_keys=True)


def as_xml(rows: Sequence[Row], root: str, item: str) -> str:
    top = etree.Element(root)
    for row in rows:
        elem = etree.SubElement(top, item)
        for key, value in row.items():
            etree.SubElement(elem, key.upper()).text = str(value)
    return etree.tostring(top, pretty_print=True, encoding="unicode").rstrip()


def emit(rows: Sequence[Row], columns: Sequence[str], fmt: str, root: str, item: str) -> str:
    if fmt == "json":
        return as_json(rows)
    if fmt == "xml":
        return as_xml(rows, root, item)
    return table(rows, columns)
