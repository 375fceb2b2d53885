"""DS stat of a local directory a user names: the walk (du -sb in the stock driver) is bounded."""

from __future__ import annotations

import time

import pytest
from conftest import installed_lab
from test_storage_ds import HOST, conf, doc, ds


@pytest.fixture(scope="module")
def lab():
    with installed_lab(1) as lab:
        lab.host(HOST).write_conf(conf("none").replace("probe_timeout = 5.0", "probe_timeout = 1.0"))
        lab.ssh(HOST).run(["mkdir", "-p", "/var/tmp/import/kernels"])
        lab.ssh(HOST).run(["dd", "if=/dev/zero", "of=/var/tmp/import/kernels/vmlinuz", "bs=1M",
                           "count=2", "status=none"])
        yield lab


def test_stat_of_a_small_directory_is_its_size(lab):
    assert ds(lab, "stat", doc("<PATH>/var/tmp/import/kernels</PATH>")).stdout.strip() == "2"


def test_stat_of_the_whole_file_system_stops_at_the_probe_timeout(lab):
    start = time.monotonic()
    result = ds(lab, "stat", doc("<PATH>/</PATH>"))
    took = time.monotonic() - start
    assert result.returncode != 0
    assert "ERROR: stat: IMAGE/PATH: / is too large to measure within storage.probe_timeout (1 s)" \
        in result.stderr, (result.stderr, result.stdout)
    print(f"stat of / refused after {took:.1f} s")
