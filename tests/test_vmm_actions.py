"""The action table of remotes/vmm/onemetal against OpenNebula's own kvm driver (the mirror's
src/vmm_mad/remotes/kvm): every stock action has a script here, and the unsupported ones fail
at once, in OpenNebula's error format, as the host's /usr/bin/python3 runs them."""

from __future__ import annotations

import os
import subprocess

import pytest

from onemetal import hostcall
from onemetal.opennebula.protocol import ERROR_BEGIN, ERROR_END
from onemetal.vmm import actions

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MIRROR = "/work/.mirror/OpenNebula+one/repo"
SCRIPTS = os.path.join(REPO, "remotes", "vmm", "onemetal")


def stock_actions() -> list[str]:
    if not os.path.isdir(MIRROR):
        pytest.skip("no OpenNebula mirror here")
    listing = subprocess.run(["git", "-C", MIRROR, "ls-tree", "--name-only", "HEAD",
                              "src/vmm_mad/remotes/kvm/"], capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    return sorted(os.path.basename(p) for p in listing
                  if os.path.basename(p) not in actions.STOCK_HELPERS)


def test_every_stock_kvm_action_has_a_script_and_an_entry():
    stock = stock_actions()
    assert {"deploy", "exec", "migrate", "prereconfigure", "snapshot_create"} <= set(stock)
    ours = {name for name in os.listdir(SCRIPTS) if name != "driver"}
    for name in ours:  # each a link to the one driver
        assert os.readlink(os.path.join(SCRIPTS, name)) == "driver"
    missing = sorted(set(stock) - ours)
    unwired = sorted(name for name in ours if f"vmm-{name}" not in hostcall.ENTRIES)
    assert (missing, unwired) == ([], []), "stock kvm actions without a script, scripts " \
        "without an entry"
    assert set(actions.UNSUPPORTED) - ours == set()


def test_no_action_is_both_implemented_and_refused():
    for action in actions.UNSUPPORTED:
        assert hostcall.ENTRIES[f"vmm-{action}"] == f"onemetal.vmm.actions:refuse_{action}"
    refused = {e for e, target in hostcall.ENTRIES.items() if target.startswith(
        "onemetal.vmm.actions:refuse_")}
    assert refused == {f"vmm-{a}" for a in actions.UNSUPPORTED}


@pytest.mark.parametrize("action, args", [
    ("exec", ["7", "one-0", "ls\\ -l", ""]),  # one_vmm_exec: id, host, escaped command, stdin
    ("exec_cancel", ["7", "one-0"]),
    ("poll", ["one-7", "one-0", "7"]),
])
def test_an_unsupported_action_fails_with_one_line_and_exit_1(action, args):
    proc = subprocess.run(["/usr/bin/python3", "-I", os.path.join(SCRIPTS, action), *args],
                          input="<VMM_DRIVER_ACTION_DATA/>", capture_output=True, text=True,
                          timeout=30)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and proc.stdout == ""
    assert lines[0].startswith(f"ERROR: {action}: not supported by onemetal; "), lines
    assert lines[1:] == [ERROR_BEGIN, lines[0].removeprefix(f"ERROR: {action}: "), ERROR_END]
