"""DS cp and stat of a URL may not reach the metadata service, loopback or fenced networks.

One HTTP server in the lab host's namespace answers on its loopback, on the
metadata address 169.254.169.254 (added to the namespace's lo) and on its
underlay address; the driver runs as oned runs it, over SSH as oneadmin.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import installed_lab
from test_storage_ds import BASE, DS_DIR, HOST, conf, doc, ds, files

PORT = 8088
_SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/go?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.end_headers()
            return
        body = b"secret-" + self.path.encode() + b"\0" * (4 << 20 if "big" in self.path else 4096)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def lab():
    with installed_lab(1) as lab:
        host = lab.host(HOST)
        host.write_conf(conf("none"))
        host.run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"])
        server = host.runner.spawn(["python3", "-u", "-c", _SERVER, str(PORT)],
                                   os.path.join(lab.workdir, "http.log"))
        try:
            deadline = time.monotonic() + 10
            while host.run(["python3", "-c", "import socket; socket.create_connection("
                            f"('127.0.0.1', {PORT}), 1)"], check=False).returncode != 0:
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.1)
            yield lab
        finally:
            server.kill()
            server.wait(10)


def cp(lab, url: str):
    return ds(lab, "cp", doc(f"<PATH><![CDATA[{url}]]></PATH>"))


def test_a_url_on_an_unfenced_address_is_imported(lab):
    address = lab.host(HOST).address
    result = cp(lab, f"http://{address}:{PORT}/img")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "raw"
    assert ds(lab, "stat", doc(f"<PATH>http://{address}:{PORT}/img</PATH>")).stdout.strip() == "1"


@pytest.mark.parametrize("url, address", [
    ("http://169.254.169.254:{port}/latest/meta-data/iam/security-credentials/", "169.254.169.254"),
    ("http://127.0.0.1:{port}/img", "127.0.0.1"),
    ("http://localhost:{port}/img", "127.0.0.1"),
    ("http://2130706433:{port}/img", "127.0.0.1"),  # 127.0.0.1 spelled as a number
    ("http://[::ffff:127.0.0.1]:{port}/img", "::ffff:127.0.0.1"),
    ("http://{host}:{port}/go?http://169.254.169.254:{port}/latest/meta-data/", "169.254.169.254"),
    ("http://{host}:{port}/go?http://localhost:{port}/img", "127.0.0.1"),
])
def test_a_fenced_address_is_refused_directly_by_name_or_through_a_redirect(lab, url, address):
    url = url.format(port=PORT, host=lab.host(HOST).address)
    before = files(lab, BASE)
    for action in ("cp", "stat"):
        result = ds(lab, action, doc(f"<PATH><![CDATA[{url}]]></PATH>"))
        assert result.returncode != 0
        assert f"ERROR: {action}: IMAGE/PATH: " in result.stderr, result.stderr
        assert f"is {address}, an address storage.url_blocked_networks fences off" \
            in result.stderr, result.stderr
    assert files(lab, BASE) == before


def test_the_operator_fences_the_vpc_and_allows_a_mirror(lab):
    host = lab.host(HOST)
    vpc = lab.network.with_prefixlen
    try:
        host.write_conf(conf("none") + f'url_blocked_networks = ["{vpc}"]\n')
        refused = cp(lab, f"http://{host.address}:{PORT}/img")
        assert "url_blocked_networks fences off" in refused.stderr, refused.stderr
        host.write_conf(conf("none") + f'url_blocked_networks = ["{vpc}", "127.0.0.0/8"]\n'
                        f'url_allowed_networks = ["{host.address}/32"]\n')
        assert cp(lab, f"http://{host.address}:{PORT}/img").returncode == 0
        inner = cp(lab, f"http://{host.address}:{PORT}/go?http://127.0.0.1:{PORT}/img")
        assert "is 127.0.0.1, an address" in inner.stderr, inner.stderr
    finally:
        host.write_conf(conf("none"))


def test_a_download_larger_than_the_free_space_is_refused_before_it_fills_the_share(lab):
    host, small = lab.host(HOST), f"{DS_DIR}/101"
    host.run(["mkdir", "-p", small])
    host.run(["mount", "-t", "tmpfs", "-o", "size=2m,uid=9869,gid=9869", "tmpfs", small])
    try:
        url = f"http://{host.address}:{PORT}/big"
        result = ds(lab, "cp", doc(f"<PATH>{url}</PATH>", base=small))
        assert result.returncode != 0
        assert "IMAGE/PATH: the download is larger than the space free in the datastore = 2 MB" \
            in result.stderr, result.stderr
        assert files(lab, small) == []
    finally:
        host.run(["umount", small])
