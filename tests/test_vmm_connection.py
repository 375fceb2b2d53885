"""Bounded libvirt calls (onemetal.vmm.connection) against libvirt's own test driver, in-process."""

from __future__ import annotations

import threading
import time

import libvirt
import pytest

from onemetal.vmm.connection import Connection, VmmError, call

TEST_URI = "test:///default"  # libvirt's built-in driver: no daemon, one domain named "test"


def test_a_call_returns_its_value_and_a_libvirt_error_names_the_operation_and_domain() -> None:
    conn = Connection(TEST_URI, 5.0)
    try:
        assert conn.run("count", "one-1", lambda c: c.numOfDomains()) >= 1
        with pytest.raises(VmmError) as info:
            conn.run("suspend", "one-404", lambda c: c.lookupByName("one-404").suspend())
        assert str(info.value).startswith("one-404: suspend: ")
        assert "Domain not found" in str(info.value)  # libvirt's own words follow
    finally:
        conn.close()


def test_lookup_gives_none_for_a_missing_domain_and_the_domain_otherwise() -> None:
    conn = Connection(TEST_URI, 5.0)
    try:
        assert conn.lookup("one-404") is None
        assert conn.lookup("test").name() == "test"
    finally:
        conn.close()


def test_a_call_that_does_not_return_fails_at_the_deadline() -> None:
    release = threading.Event()
    begin = time.monotonic()
    with pytest.raises(VmmError, match=r"one-3: destroy: libvirtd did not answer within 0.2 s"):
        call(release.wait, 30, what="destroy", domain="one-3", timeout=0.2)
    waited = time.monotonic() - begin
    release.set()
    print(f"\nreturned after {waited:.3f} s for a 0.2 s timeout")


def test_an_unreachable_uri_is_one_error_naming_the_connection() -> None:
    uri = "qemu+unix:///system?socket=/nonexistent/sock"
    with pytest.raises(VmmError, match=r"^one-5: connect to qemu\+unix:///system\?socket=/non"):
        Connection(uri, 5.0).lookup("one-5")


def test_other_errors_pass_through_unchanged() -> None:
    with pytest.raises(ZeroDivisionError):
        call(lambda: 1 / 0, what="x", domain="one-1", timeout=1.0)


def test_the_cost_of_bounding_a_call_with_a_thread() -> None:
    conn = libvirt.open(TEST_URI)
    try:
        n = 300
        begin = time.perf_counter()
        for _ in range(n):
            conn.numOfDomains()
        direct = (time.perf_counter() - begin) / n
        begin = time.perf_counter()
        for _ in range(n):
            call(conn.numOfDomains, what="count", domain="", timeout=5.0)
        bounded = (time.perf_counter() - begin) / n
    finally:
        conn.close()
    print(f"\nlibvirt call direct {direct * 1e6:.1f} us, through a thread {bounded * 1e6:.0f} us")
    assert bounded > 0 and direct > 0
