"""Checks for values from templates before they reach a command line or a path.

Every check raises InputError naming the field, so the operator sees which
attribute of which NIC, disk or host to fix.
"""

from __future__ import annotations

import re

from onemetal.errors import InputError

# Bridge, tap, host and datastore names: what Linux, OVS and DNS accept, nothing a shell or a path could misread.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def name(value: str, field: str, max_len: int = 253) -> str:
    if not value:
        raise InputError("is empty", field)
    if len(value) > max_len:
        raise InputError(f"longer than {max_len} characters", field)
    if ".." in value or not _NAME.match(value):
        raise InputError(f"{value!r} contains characters not allowed in a name "
                         "(allowed: letters, digits, '_', '.', ':', '-'; no '..')", field)
    return value


def text(value: str, field: str, max_len: int = 1024) -> str:
    """Free text (VM names, descriptions): no control characters such as newlines."""
    if len(value) > max_len:
        raise InputError(f"longer than {max_len} characters", field)
    if _CONTROL.search(value):
        raise InputError("contains control characters (newline, tab, ...)", field)
    return value


def integer(value: str, field: str, lo: int = 0, hi: int | None = None) -> int:
    stripped = value.strip()
    if not re.fullmatch(r"-?[0-9]+", stripped):
        raise InputError(f"{value!r} is not an integer", field)
    number = int(stripped)
    if number < lo or (hi is not None and number > hi):
        bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise InputError(f"{number} is out of range ({bound})", field)
    return number


def mac(value: str, field: str) -> str:
    if not _MAC.match(value):
        raise InputError(f"{value!r} is not a MAC address", field)
    return value.lower()


def ip(value: str, field: str, version: int | None = None) -> str:
    if "%" in value:  # Python takes any text after % as an IPv6 scope id: ',', '=', newlines
        raise InputError(f"{value!r} has a scope id (%...); give the address alone", field)
    import ipaddress  # about 5 ms: for the actions that check an address, not every user of names

    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise InputError(f"{value!r} is not an IP address", field) from None
    if version is not None and address.version != version:
        raise InputError(f"{value!r} is not an IPv{version} address", field)
    return str(address)


def template_value(value: object) -> str:
    """A value in OpenNebula's template syntax: double quotes, with \\ and \" escaped."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def yes_no(value: str, field: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("yes", "true", "1"):
        return True
    if lowered in ("no", "false", "0", ""):
        return False
    raise InputError(f"{value!r} is not YES or NO", field)
