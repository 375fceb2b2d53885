"""connection.retry_if: the stock scripts' retry of a libvirt error that passes (a block job)."""

from __future__ import annotations

import pytest

from onemetal.vmm.connection import VmmError, retry_if


def _failing(messages: list[str]):
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if messages:
            raise VmmError(messages.pop(0), "one-7")
        return "done"
    return fn, calls


def test_the_marked_error_is_tried_again_until_it_passes() -> None:
    fn, calls = _failing(["create snapshot: active block job", "create snapshot: active block job"])
    assert retry_if("active block job", fn, wait=0.0) == "done" and len(calls) == 3


def test_the_last_try_and_any_other_error_fail_at_once() -> None:
    fn, calls = _failing(["x: active block job"] * 3)
    with pytest.raises(VmmError, match="active block job"):
        retry_if("active block job", fn, wait=0.0)
    assert len(calls) == 3
    fn, calls = _failing(["resize disk: no such file"])
    with pytest.raises(VmmError, match="no such file"):
        retry_if("is in use", fn, wait=0.0)
    assert len(calls) == 1
