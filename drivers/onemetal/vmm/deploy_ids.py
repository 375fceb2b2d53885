"""The deploy id oned passes every VMM action after deploy: the UUID deploy printed, or the
domain's name one-<VMID>.

Apart from domain_xml, so that an action that only names a domain (cancel, shutdown, save,
the snapshots, ...) does not import lxml.
"""

from __future__ import annotations

import re

from onemetal.errors import InputError

NAME = re.compile(r"one-[0-9]+")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checked(raw: str) -> str:
    """`raw` when it is a UUID or a name one-<VMID>, else InputError naming the deploy id."""
    if not (NAME.fullmatch(raw) or UUID.fullmatch(raw)):
        raise InputError(f"{raw!r} is neither a domain name one-<VMID> nor a UUID", "deploy id")
    return raw
