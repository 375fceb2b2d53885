"""VM disk sizes to monitord, as the stock TM monitors send them (send_to_monitor, scripts_common.sh).

Since OpenNebula 5.12 oned reads only USED_MB, FREE_MB and TOTAL_MB from a system
datastore monitor's stdout; the `VM=[ID=<vm>, MONITOR="<base64>"]` lines go to monitord
as one MONITOR_VM message over UDP: `MONITOR_VM SUCCESS -1 0 <base64 of the zlib-deflated
lines>`, to MONITOR_ADDRESS:PORT of monitord.conf ("auto": 127.0.0.1). Without a
monitord.conf nothing is sent, as stock. A PUBKEY there asks for RSA-encrypted messages,
which this module does not make: it says so on stderr and sends nothing.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import sys
import zlib

# The stock function's order; ONE_LOCATION's copy is for self-contained installs.
CONF_PATHS = ("/var/tmp/one_db/etc/monitord.conf", "/etc/one/monitord.conf")
SEND_TIMEOUT = 1.0  # nc -u -w1


def conf_path() -> str | None:
    paths = list(CONF_PATHS)
    if os.environ.get("ONE_LOCATION"):
        paths.append(os.path.join(os.environ["ONE_LOCATION"], "etc", "monitord.conf"))
    return next((p for p in paths if os.path.isfile(p)), None)


def setting(text: str, key: str) -> str:
    """KEY's value in monitord.conf's NETWORK vector (`KEY = value,` or `KEY = "value"`)."""
    for line in text.splitlines():
        found = re.match(rf'\s*(?:NETWORK\s*=\s*\[\s*)?{key}\s*=\s*"?([^",\s\]]*)', line)
        if found:
            return found.group(1)
    return ""


def message(lines: list[str]) -> bytes:
    """The datagram: `echo $payload | ruby -e 'puts Zlib::Deflate.deflate(STDIN.read)' | base64`."""
    packed = zlib.compress((" ".join(" ".join(lines).split()) + "\n").encode())
    packed += b"" if packed.endswith(b"\n") else b"\n"
    return f"MONITOR_VM SUCCESS -1 0 {base64.b64encode(packed).decode('ascii')}\n".encode()


def send(lines: list[str]) -> None:
    """Best effort, as stock: a monitord that is away loses one round of disk sizes."""
    path = conf_path()
    if path is None or not lines:
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    address, port = setting(text, "MONITOR_ADDRESS"), setting(text, "PORT")
    if setting(text, "PUBKEY"):
        sys.stderr.write(f"VM disk sizes not sent: {path} sets PUBKEY (encrypted messages)\n")
        return
    address = "127.0.0.1" if not address or "auto" in address else address
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(SEND_TIMEOUT)
            udp.sendto(message(lines), (address, int(port or "4124")))
    except (OSError, ValueError) as err:
        sys.stderr.write(f"VM disk sizes not sent to {address}:{port}: {err}\n")
