"""Is a datastore's NFS server answering on its port? One bounded TCP connect, no data sent.

The address comes from the mount's `addr=` option (the kernel's resolved server address),
else from the source's host part (`server:/export`, `[v6]:/export`); efs-utils' TLS
tunnel (source 127.0.0.1:/ with `port=`) is checked on its local port. The name lookup
and the connect run in a child with a deadline (storage/probe.py): getaddrinfo has no
timeout of its own, and a doctor must not hang on a dead resolver either.

>>> from onemetal.storage.mounts import parse_line
>>> server(parse_line("1 0 0:4 / /d rw - nfs4 fs-1.efs:/ rw,vers=4.1,addr=10.0.0.7"), "")
('10.0.0.7', 2049)
>>> server(None, "[fd00::5]:/export")
('fd00::5', 2049)
"""

from __future__ import annotations

import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.storage.mounts import Mount

from onemetal.storage import probe

NFS_PORT = 2049


def source_host(source: str) -> str:
    if source.startswith("["):
        return source[1:source.find("]")] if "]" in source else ""
    return source.split(":", 1)[0]


def server(mount: Mount | None, configured_source: str) -> tuple[str, int] | None:
    """(address, port) of the NFS server behind `mount` (or of the configured source), or None."""
    options = mount.options if mount is not None else {}
    port = options.get("port", "")
    port_number = int(port) if port.isdigit() and int(port) > 0 else NFS_PORT
    if options.get("addr"):
        return options["addr"], port_number
    host = source_host(mount.source if mount is not None else configured_source)
    return (host, port_number) if host else None


def _connect(host: str, port: int, timeout: float) -> str:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        return str(conn.getpeername()[0])


def connect(host: str, port: int, timeout: float) -> str:
    """The peer address once a TCP connection is made, else probe.ProbeTimeout/ProbeFailed."""
    # One deadline, the parent's, for lookup and connect: the socket's own timeout is only a backstop.
    return probe.in_child(lambda: _connect(host, port, timeout + 1.0), timeout,  # type: ignore[no-any-return]
                          f"{host}:{port}")
