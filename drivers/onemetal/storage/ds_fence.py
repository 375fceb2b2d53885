"""Which addresses an image download (DS cp and stat of a URL) may connect to.

IMAGE/PATH is chosen by whoever creates an image: without a fence,
http://169.254.169.254/latest/meta-data/iam/... would copy the frontend's instance
credentials into an image the user reads back, and http://127.0.0.1:2633/ would
reach oned. The check is made on every address a connection is actually opened to,
after name resolution, so a DNS name, a decimal or IPv4-mapped spelling of an
address, or a redirect (each hop opens a new connection through the same opener)
cannot lead around it. Proxies from the environment are not used: through a proxy
the fence would see only the proxy's address.

>>> fence = Fence(networks(("127.0.0.0/8",), "b"), networks(("127.0.0.5/32",), "a"))
>>> fence.allows("127.0.0.1"), fence.allows("::ffff:127.0.0.1"), fence.allows("127.0.0.5")
(False, False, True)
"""

from __future__ import annotations

import ipaddress
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.config import StorageConfig

from onemetal.errors import ConfigError, InputError
from onemetal.record import value

FIELD = "IMAGE/PATH"


def networks(entries: tuple, field: str) -> tuple:
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            raise ConfigError(f"{entry!r} is not a CIDR", field) from None
    return tuple(out)


@value
class Fence:
    blocked: tuple
    allowed: tuple

    def allows(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed if net.version == ip.version):
            return True
        return not any(ip in net for net in self.blocked if net.version == ip.version)

    def connect(self, address: tuple, timeout: object = None,
                source_address: object = None) -> socket.socket:
        """socket.create_connection, refusing every resolved address the fence blocks."""
        host, port = address[0], address[1]
        refused, error = "", None
        for family, kind, proto, _name, sockaddr in socket.getaddrinfo(
                host, port, 0, socket.SOCK_STREAM):
            if not self.allows(sockaddr[0]):
                refused = sockaddr[0]
                continue
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # noqa: SLF001 - its sentinel
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        if error is not None:
            raise error
        raise InputError(f"{host} is {refused}, an address storage.url_blocked_networks fences "
                         "off (see storage.url_allowed_networks)", FIELD)


def from_config(cfg: StorageConfig) -> Fence:
    return Fence(networks(cfg.url_blocked_networks, "storage.url_blocked_networks"),
                 networks(cfg.url_allowed_networks, "storage.url_allowed_networks"))


def opener(cfg: StorageConfig, redirect: type):  # noqa: ANN201 - urllib's OpenerDirector
    """An opener whose every connection, redirects included, goes through the fence."""
    import http.client
    import urllib.request

    fence = from_config(cfg)

    def fenced(cls: type) -> type:
        class Fenced(cls):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)
                self._create_connection = fence.connect

        return Fenced

    http_conn, https_conn = fenced(http.client.HTTPConnection), fenced(http.client.HTTPSConnection)

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):  # noqa: ANN001, ANN201
            return self.do_open(http_conn, req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):  # noqa: ANN001, ANN201
            return self.do_open(https_conn, req, context=self._context)

    return urllib.request.build_opener(urllib.request.ProxyHandler({}), Http, Https, redirect)
