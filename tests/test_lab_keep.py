"""A kept lab (`onemetal demo --keep`) outlives its process and every later sweep, until
teardown_kept removes it."""

import json
import os
import shlex
import subprocess
import sys
import textwrap
import time

import pytest

from onemetal.lab import Lab, LabError, netns, registry
from onemetal.lab.keep import entry_hints, teardown_kept

DRIVERS = os.path.join(os.path.dirname(__file__), "..", "drivers")

# The child builds a lab with a VM, keeps it, prints what it made and exits normally.
CHILD = textwrap.dedent(f"""
    import json, sys
    sys.path.insert(0, {DRIVERS!r})
    from onemetal.lab import Lab
    from onemetal.lab.keep import entry_hints
    with Lab(hosts=1) as lab:
        lab.host("one-0").vsctl("add-br", "onebr9", "--", "set", "bridge", "onebr9",
                                "datapath_type=netdev")
        lab.add_vm("one-0", "vm9", "onebr9", "192.168.9.2/24")
        lab.keep()
        print(json.dumps({{"token": lab.token, "namespaces": lab.record.namespaces,
                          "pids": lab.record.pids, "hints": entry_hints(lab)}}), flush=True)
""")


def _enter(hints: list[str], place: str, command: str) -> str:
    """Run `command` where the hint for `place` would put an operator."""
    [line] = [h for h in hints if h.split("  ")[0].strip() == place]
    argv = shlex.split(line[len(place):])
    return netns.ROOT.run([*argv, "-c", command]).stdout


def _keep_a_lab_in_a_child() -> dict:
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


def _check_it_survives(token: str, names: list[str], pids: list[int], hints: list[str]) -> None:
    assert names and pids
    assert token in [r.token for r in registry.kept_records()]
    assert token not in [r.token for r in registry.stale_records()]
    with Lab(hosts=1):
        pass   # starting a lab sweeps the stale labs, never a kept one
    assert all(netns.exists(n) for n in names) and all(registry.alive(p) for p in pids)
    assert hints[-1].split() == ["teardown", "onemetal", "demo", "--down", token]
    # The host's hint enters its mount namespace too: its own /var/lib/onemetal, oneadmin's.
    assert "172.31.255.10/24" in _enter(hints, "one-0", "ip -4 -o addr show br-phy")
    assert _enter(hints, "one-0", "stat -c %U /var/lib/onemetal").strip() == "oneadmin"
    assert "192.168.9.2/24" in _enter(hints, "vm9 (on one-0)", "ip -4 -o addr show eth0")
    assert "172.31.255.2/24" in _enter(hints, "frontend", "ip -4 -o addr show eth0")


def test_a_kept_lab_survives_its_owner_and_a_new_lab_until_teardown_kept():
    begin = time.monotonic()
    kept = _keep_a_lab_in_a_child()
    token, names, pids = kept["token"], kept["namespaces"], kept["pids"]
    try:
        _check_it_survives(token, names, pids, kept["hints"])
        with pytest.raises(LabError, match="no kept lab 'nosuch'"):
            teardown_kept("nosuch")
        assert teardown_kept(token) == [token]
    finally:
        if token in [r.token for r in registry.kept_records()]:
            teardown_kept(token)   # a failed check leaves nothing up either
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(registry.alive(p) for p in pids):
        time.sleep(0.05)
    assert not [n for n in names if netns.exists(n)]
    assert not [p for p in pids if registry.alive(p)]
    assert token not in [r.token for r in registry.records()]
    print(f"kept lab built, checked and torn down in {time.monotonic() - begin:.1f} s")


def test_old_records_without_kept_load_and_kept_ones_are_never_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()   # reaped: its pid names no process
    old = {"token": "aaaaaa", "owner_pid": dead.pid, "workdir": "/nonexistent"}
    (tmp_path / "aaaaaa.json").write_text(json.dumps(old))
    kept = registry.Record(token="bbbbbb", owner_pid=dead.pid, workdir="/nonexistent", kept=True)
    kept.save()
    assert [r.token for r in registry.records()] == ["aaaaaa", "bbbbbb"]
    assert [(r.token, r.kept) for r in registry.stale_records()] == [("aaaaaa", False)]
    assert [r.token for r in registry.kept_records()] == ["bbbbbb"]
