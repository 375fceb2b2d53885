"""The lab's libvirt: virtlogd and libvirtd per lab host, reached by oneadmin over SSH, TCG only."""

from __future__ import annotations

from typing import Iterator

import pytest

from onemetal.lab import Lab, libvirt
from onemetal.lab.registry import alive

# oneadmin's view, as the driver has it: Debian's python3-libvirt under /usr/bin/python3.
_OPEN = """\
import libvirt, sys
conn = libvirt.open(sys.argv[1])
print(conn.getURI(), conn.getHostname() != '', sep=' ')
print(' '.join(sorted(d.name() for d in conn.listAllDomains())))
"""
_DOMAIN = """\
<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>
<os><type arch='x86_64'>hvm</type></os></domain>"""


@pytest.fixture(scope="module")
def lab2() -> Iterator[tuple[Lab, list[libvirt.Libvirt]]]:
    with Lab(hosts=2) as lab:
        daemons = [libvirt.start(h, lab.record) for h in lab.hosts]  # type: ignore[arg-type]
        print("\nlibvirt answered in " + ", ".join(f"{d.started_in:.2f} s" for d in daemons))
        yield lab, daemons
        for d in daemons:
            d.stop()


def test_oneadmin_opens_the_read_write_socket_with_debians_libvirt_python(lab2) -> None:
    lab, _ = lab2
    out = lab.ssh("one-0").run(["/usr/bin/python3", "-c", _OPEN, libvirt.URI]).stdout
    assert out.splitlines()[0] == f"{libvirt.URI} True"
    groups = lab.ssh("one-0").run(["id", "-nG"]).stdout.split()
    assert "libvirt" in groups


def test_each_host_has_its_own_libvirtd_and_guests_run_under_tcg(lab2) -> None:
    lab, daemons = lab2
    one0 = daemons[0]
    one0.host.run(["sh", "-c", "cat > /run/lab-dom.xml"], input=_DOMAIN.format(name="lab-only"))
    one0.virsh("create", "/run/lab-dom.xml")
    try:
        seen = [lab.ssh(h).run(["/usr/bin/python3", "-c", _OPEN, libvirt.URI]).stdout
                for h in ("one-0", "one-1")]
        assert seen[0].splitlines()[1] == "lab-only"
        assert seen[1].splitlines()[1:] in ([], [""])
        [pid] = one0.qemu_pids()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode().split("\0")
        assert "accel=tcg" in " ".join(argv) or "tcg" in argv
    finally:
        one0.virsh("destroy", "lab-only", check=False)


def test_a_second_start_reuses_the_capability_cache_and_stop_leaves_no_process() -> None:
    with Lab(hosts=1) as lab:
        d = libvirt.start(lab.hosts[0], lab.record)  # type: ignore[arg-type]
        print(f"\nlibvirt (cache warm) answered in {d.started_in:.2f} s")
        pids = list(d.pids)
        d.stop()
        assert [p for p in pids if alive(p)] == []
