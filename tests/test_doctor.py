"""The doctor's pure parts: the host-doctor request (attacker-free but still checked), the
remotes comparison on a real tree, the probe's peer lines, and the VM port MTU verdicts."""

from __future__ import annotations

import io
import json

import pytest

from onemetal.doctor import host, mesh, remotes
from onemetal.errors import InputError
from onemetal.net.ovsdb import Interface
from onemetal.net.targets import K_OWNER, K_ROLE, OWNER
from onemetal.opennebula.values import template_value


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "a/../../b", "", "a\0b"])
def test_a_path_outside_the_remotes_tree_is_refused_naming_the_field(rel):
    with pytest.raises(InputError) as err:
        host.request(json.dumps({"files": {rel: "00"}, "peers": []}))
    assert err.value.field == "host-doctor files"


@pytest.mark.parametrize("doc", ["[", '{"files": []}', '{"files": {"a": 1}}', '{"peers": "one-1"}'])
def test_a_malformed_request_is_refused(doc):
    with pytest.raises(InputError) as err:
        host.entry([], io.StringIO(doc))
    assert err.value.field == "host-doctor stdin"


def test_compare_names_missing_and_changed_files_and_is_ok_when_equal(tmp_path):
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("two")
    want = {"a": remotes.digest(str(tmp_path / "a")), "b": remotes.digest(str(tmp_path / "b"))}
    assert remotes.compare(str(tmp_path), want).status == "OK"
    (tmp_path / "b").write_text("changed")
    want["c"] = want["a"]
    check = remotes.compare(str(tmp_path), want)
    assert (check.status, check.detail) == ("FAIL", f"{tmp_path}: 1 missing (c); 1 differ (b)")
    assert check.remedy == "run `onehost sync --force` on the frontend"


def _peer(name: str, state: str, diag: str = "") -> str:
    return (f"ONEMETAL_MESH_PEER=[NAME={template_value(name)},TUNNEL_IP=\"10.0.0.2\","
            f"STATE={template_value(state)},DIAGNOSTIC={template_value(diag)},MTU=\"1450\"]")


def test_peers_against_the_pool_and_each_tunnel_state():
    states = mesh.peer_states([_peer("one-1", "up"), _peer("one-2", "down", 'said "no"'),
                               "ONEMETAL_MESH_PEERS=\"2\""])
    assert states["one-2"]["DIAGNOSTIC"] == 'said "no"'
    checks = {c.name: c for c in mesh.peer_checks(states, ["one-1", "one-3"])}
    assert checks["mesh peers"].detail == "not peers: one-3; not in the host pool: one-2"
    assert checks["tunnel to one-1"].status == "OK"
    assert checks["tunnel to one-2"].status == "FAIL" and "UDP 4789" in checks["tunnel to one-2"].remedy


def _port(name: str, asked: int | None, role: str = "vm") -> Interface:
    return Interface(name=name, uuid="u", ofport=1, type="", options={},
                     external_ids={K_OWNER: OWNER, K_ROLE: role}, mtu_request=asked, mtu=None,
                     bfd={}, bfd_status={}, statistics={}, error=None)


def test_a_vm_port_asking_more_than_the_overlay_fails_with_the_command_that_fixes_it():
    checks = {c.name: c for c in mesh.mtu_checks(1450, 1500, [_port("lo", 9000), _port("t", 9000, "tunnel")])}
    assert set(checks) == {"overlay mtu", "port lo mtu"}  # a tunnel is not a VM port
    assert (checks["port lo mtu"].status, checks["port lo mtu"].detail) == ("FAIL", "mtu_request 9000 > 1450")
    assert checks["port lo mtu"].remedy == "as root: ovs-vsctl set interface lo mtu_request=1450"


def test_an_underlay_that_shrank_below_the_enforced_overlay_fails():
    [check] = mesh.mtu_checks(1450, 1400, [])
    assert (check.status, check.detail) == (
        "FAIL", "1450, but the underlay is 1400 now: frames above 1350 are dropped")
    assert mesh.mtu_checks(1400, 1500, [])[0].status == "OK"  # a vnet may ask for less
