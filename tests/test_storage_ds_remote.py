"""The datastore driver against the outside of the frontend: an image server over http, and a
share that never answers. Run over SSH as oneadmin on a lab host, as oned runs it."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import REPO, installed_lab
from test_storage_ds import BASE, DS_DIR, HOST, conf, doc, ds, files, info, ok

from onemetal.lab.hung_fuse import hold_script
from onemetal.lab.samples import b64


@pytest.fixture(scope="module")
def lab():
    with installed_lab(1) as lab:
        lab.host(HOST).write_conf(conf("none"))
        yield lab


SERVE = """\
import http.server, os, sys, threading, time
os.chdir(sys.argv[1])
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
pid = os.fork()
if pid:
    print(pid, server.server_address[1])
    os._exit(0)
os.setsid()
null = os.open("/dev/null", os.O_RDWR)
for std in (0, 1, 2):
    os.dup2(null, std)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(60)  # bounded: the test kills it sooner
"""


def test_cp_from_a_url_and_over_the_size_limit(lab):
    """An http server on the host's own loopback, as an image server would be reachable."""
    host, www = lab.host(HOST), "/var/tmp/www"
    host.run(["mkdir", "-p", www])
    host.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{www}/small.qcow2", "5M"])
    host.run(["dd", "if=/dev/zero", f"of={www}/big.raw", "bs=1M", "count=3", "status=none"])
    pid, port = map(int, host.run(["python3", "-c", SERVE, www]).stdout.split())
    host.write_conf(conf("none") + "url_max_mb = 1\nurl_allowed_networks = [\"127.0.0.1/32\"]\n")
    try:
        url = f"http://127.0.0.1:{port}"
        source, fmt = ok(ds(lab, "cp", doc(f"<PATH>{url}/small.qcow2</PATH>"), "40")).split(" ")
        assert fmt == "qcow2" and info(lab, source)["virtual-size"] == 5 << 20
        assert ok(ds(lab, "stat", doc(f"<PATH>{url}/big.raw</PATH>"), "-1")) == "3"
        md5 = host.run(["md5sum", f"{www}/small.qcow2"]).stdout.split()[0]
        sums = f"<PATH>{url}/small.qcow2</PATH><TEMPLATE><MD5>{md5}</MD5></TEMPLATE>"
        assert ok(ds(lab, "cp", doc(sums), "42")).endswith(" qcow2")
        before = files(lab, BASE)
        wrong = f"<PATH>{url}/small.qcow2</PATH><TEMPLATE><SHA1>{'0' * 40}</SHA1></TEMPLATE>"
        for image, reason in [(f"<PATH>{url}/big.raw</PATH>", "IMAGE/PATH: the download is larger "
                               "than storage.url_max_mb = 1 MB"),
                              (f"<PATH>{url}/none</PATH>", "IMAGE/PATH: cannot fetch"),
                              (wrong, "IMAGE/TEMPLATE/SHA1: the imported image's sha1 is not 000")]:
            result = ds(lab, "cp", doc(image), "41")
            assert result.returncode == 1 and f"ERROR: cp: {reason}" in result.stderr, result.stderr
            assert files(lab, BASE) == before  # the partial file is gone
    finally:
        host.write_conf(conf("none"))
        host.run(["kill", "-9", str(pid)], check=False)


def test_a_share_that_never_answers_gives_an_error_within_the_probe_deadline(lab):
    """A FUSE mount nobody serves (statfs and mkdir wait, as on a hard NFS mount whose server is
    gone), accepted by the "lab" profile: monitor and mkfs end with an error instead of hanging."""
    host, hung = lab.host(HOST), f"{DS_DIR}/300"
    os.makedirs(host.path(hung))
    holder = int(host.run(["python3", "-c", hold_script(os.path.join(REPO, "drivers"), hung,
                                                        "hung:/export", 60)]).stdout)
    host.write_conf(conf("lab").replace("probe_timeout = 5.0", "probe_timeout = 1.0"))
    try:
        for action, image in [("monitor", ""), ("mkfs", "<FORMAT>raw</FORMAT><SIZE>4</SIZE>")]:
            start = time.monotonic()
            result = lab.ssh(HOST).run([f"/var/tmp/one/datastore/onemetal/{action}", "7"],
                                       input=b64(doc(image, base=hung)), check=False, timeout=30)
            print(f"{action} on a hung share: exit {result.returncode} after "
                  f"{time.monotonic() - start:.2f} s (probe_timeout 1 s)")
            assert result.returncode == 1
            assert f"ERROR: {action}: {hung}: did not answer within 1 s" in result.stderr
    finally:
        host.write_conf(conf("none"))
        os.kill(holder, signal.SIGKILL)
        host.run(["umount", "-l", hung], check=False)
