"""Calls on a mounted file system run in a child the action stops waiting for at its deadline."""

from __future__ import annotations

import os
import time

import pytest

from onemetal.storage.probe import ProbeFailed, ProbeTimeout, in_child, space


def test_space_reports_the_file_system_of_a_path(tmp_path):
    got = space(str(tmp_path), timeout=5)
    st = os.statvfs(tmp_path)
    assert got["total"] == st.f_blocks * st.f_frsize
    assert 0 <= got["free"] <= got["total"] and got["used"] >= 0


def test_a_call_that_never_returns_is_abandoned_at_the_deadline():
    start = time.monotonic()
    with pytest.raises(ProbeTimeout) as caught:
        in_child(lambda: time.sleep(30), timeout=0.3, what="/var/lib/one/datastores/100")
    assert time.monotonic() - start < 5  # the parent stopped waiting; the child was killed
    assert str(caught.value).startswith("/var/lib/one/datastores/100: did not answer within 0.3 s")


def test_a_failing_call_is_reported_with_its_reason(tmp_path):
    with pytest.raises(ProbeFailed, match="FileNotFoundError"):
        space(str(tmp_path / "absent"), timeout=5)


def test_a_child_that_dies_without_answering_is_an_error():
    with pytest.raises(ProbeFailed, match="died without an answer"):
        in_child(lambda: os._exit(3), timeout=5, what="probe")


def test_space_makes_a_missing_datastore_directory_only_when_asked(tmp_path):
    missing = tmp_path / "100"
    with pytest.raises(ProbeFailed, match="FileNotFoundError"):
        space(str(missing), 5)
    assert not missing.exists()
    assert space(str(missing), 5, create=True)["total"] > 0
    assert missing.is_dir()
