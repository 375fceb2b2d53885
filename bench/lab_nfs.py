#!/usr/bin/env python3
"""Throughput of the lab's NFS (onemetal.lab.nfs): ganesha in one lab host, the FUSE NFSv4
client in another, written and read as oneadmin over SSH, as the drivers do.

Sequential write and read of --size-mb with dd (1 MiB blocks, fsync at the end; the read
after dropping nothing: FUSE passes every read to the server, there is no client page
cache here), then `qemu-img convert -O qcow2` of that raw file into the share and back out
to the host's local disk. Prints MiB/s per step, to tell whether a benchmark of a 1 GiB
image is practical on this client. Needs root (the lab).

    bench/lab_nfs.py [--size-mb 256] [--same-host]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import installed_lab  # noqa: E402
from onemetal.lab import nfs  # noqa: E402
from onemetal.lab.host import ONEADMIN_ID  # noqa: E402

DS = "/var/lib/one/datastores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--same-host", action="store_true",
                        help="Mount on the server's own host (no underlay switch between them).")
    opts = parser.parse_args()
    size, client = opts.size_mb, "one-0" if opts.same_host else "one-1"
    steps = [
        ("dd write", ["dd", "if=/dev/zero", f"of={DS}/raw", "bs=1M", f"count={size}",
                      "conv=fsync", "status=none"]),
        ("dd read", ["dd", f"if={DS}/raw", "of=/dev/null", "bs=1M", "status=none"]),
        ("qemu-img convert local raw -> share qcow2",
         ["qemu-img", "convert", "-O", "qcow2", "/var/tmp/raw", f"{DS}/img.qcow2"]),
        ("qemu-img convert share qcow2 -> local raw",
         ["qemu-img", "convert", "-O", "raw", f"{DS}/img.qcow2", "/var/tmp/back.raw"]),
    ]
    with installed_lab(2) as lab:
        server = nfs.start_server(lab.host("one-0"), lab.record,  # type: ignore[arg-type]
                                  owner=ONEADMIN_ID)
        host = lab.host(client)
        nfs.install_client(host)
        host.run(["mkdir", "-p", DS])
        host.run(["mount", "-t", "fuse.nfs4", server.source, DS])
        ssh = lab.ssh(client)
        # Data qemu-img must copy (zeros would be skipped as holes).
        ssh.run(["dd", "if=/dev/urandom", "of=/var/tmp/raw", "bs=1M", f"count={size}",
                 "status=none"], timeout=600)
        print(f"ganesha answered in {server.started_in:.2f} s; client on {client}; {size} MiB per step")
        try:
            for name, argv in steps:
                begin = time.monotonic()
                ssh.run(argv, timeout=1800)
                took = time.monotonic() - begin
                print(f"{name:45s} {took:7.1f} s {size / took:8.1f} MiB/s")
        finally:
            nfs.stop_clients(host)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
