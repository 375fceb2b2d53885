"""`ip -j addr show` read without sudo: the one way the net and NAT code look at addresses."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.run import Runner


def addr_show(reader: Runner, *options: str, device: str | None = None) -> list[dict[str, object]] | None:
    """`ip -j OPTIONS addr show [dev DEVICE]`, parsed; None when DEVICE is gone (a whole-host
    listing that fails raises, as any command does)."""
    argv = ["ip", "-j", *options, "addr", "show", *(["dev", device] if device else [])]
    out = reader.run(argv, check=device is None)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout or "[]")  # type: ignore[no-any-return]
