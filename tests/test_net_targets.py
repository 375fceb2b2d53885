"""TARGET names, devices on a kernel datapath and port roles, decided on OVSDB state (pure)."""

from __future__ import annotations

import re

import pytest

from onemetal.errors import InputError
from onemetal.net.bridge import tunnel_name
from onemetal.net.ovsdb import BridgeState, Interface
from onemetal.net.targets import Claim, check_names, check_ports, check_roles, datapath_port_ok

MAC = "02:00:c0:a8:00:05"
CLAIM = Claim(5, 0, MAC)
TAGGED = {"onemetal-owner": "onemetal", "onemetal-role": "vm"}


def iface(name: str, kind: str = "", **ids: str) -> Interface:
    return Interface(name=name, uuid="u", ofport=3, type=kind, options={},
                     external_ids={k.replace("_", "-"): v for k, v in ids.items()},
                     mtu_request=None, mtu=None, bfd={}, bfd_status={}, statistics={}, error=None)


def bridge(*ifaces: Interface, elsewhere: dict[str, str] | None = None) -> BridgeState:
    return BridgeState("br-mesh", True, interfaces={i.name: i for i in ifaces},
                       elsewhere=elsewhere or {})


@pytest.mark.parametrize("target", ["onegw5", "onegw", tunnel_name("10.0.0.5"), "vxlan0"])
def test_targets_taking_onemetals_own_names_are_refused(target):
    with pytest.raises(InputError, match="reserved") as error:
        check_names({target: CLAIM}, "br-mesh")
    assert error.value.field == "NIC[NIC_ID=0]/TARGET"


@pytest.mark.parametrize("target", ["tap5", "vnet3", "one-5-0", "myvx0", "gw-onegw"])
def test_other_names_pass(target):
    check_names({target: CLAIM}, "br-mesh")


def test_a_kernel_datapath_port_is_the_nics_when_libvirt_plugged_it_for_its_mac():
    plugged = bridge(iface("tap5", attached_mac=MAC.upper(), iface_id="x"))
    assert datapath_port_ok(plugged, "tap5", CLAIM)
    ours = bridge(iface("tap5", **{**TAGGED, "onemetal_vm": "5", "onemetal_nic": "0"}))
    assert datapath_port_ok(ours, "tap5", CLAIM)
    check_ports(plugged, {"tap5": CLAIM}, frozenset({"tap5"}))


@pytest.mark.parametrize("state,reason", [
    (bridge(iface("tap5", attached_mac="02:00:c0:a8:00:06")), "onemetal did not create"),
    (bridge(iface("tap5", **{**TAGGED, "onemetal_vm": "6", "onemetal_nic": "0"})), "VM 6 NIC 0"),
    (bridge(), "on no bridge"),
    (bridge(elsewhere={"tap5": "br-phy"}), "port of bridge br-phy")])
def test_a_kernel_datapath_port_of_anything_else_is_refused(state, reason):
    assert not datapath_port_ok(state, "tap5", CLAIM)
    with pytest.raises(InputError, match=re.escape(reason)) as error:
        check_ports(state, {"tap5": CLAIM}, frozenset({"tap5"}))
    assert error.value.field == "NIC[NIC_ID=0]/TARGET"


def test_a_free_name_off_the_datapath_is_free():
    check_ports(bridge(), {"tap5": CLAIM})


VM_PORT = iface("p", **{**TAGGED, "onemetal_vm": "5", "onemetal_nic": "0"})
GATEWAY = iface("p", "internal", **TAGGED)
TUNNEL = iface("p", "vxlan", onemetal_owner="onemetal", onemetal_role="tunnel")
UNTAGGED = iface("p", attached_mac=MAC)


@pytest.mark.parametrize("have,want", [(VM_PORT, "internal"), (VM_PORT, "tunnel"),
                                       (GATEWAY, "vm"), (GATEWAY, "tunnel"), (TUNNEL, "vm"),
                                       (TUNNEL, "internal"), (UNTAGGED, "internal"),
                                       (UNTAGGED, "tunnel")])
def test_a_port_never_changes_its_role(have, want):
    with pytest.raises(InputError, match=f"does not make it a {want} port"):
        check_roles(bridge(have), {"p": want})


@pytest.mark.parametrize("have,want", [(VM_PORT, "vm"), (GATEWAY, "internal"), (TUNNEL, "tunnel"),
                                       (UNTAGGED, "vm"), (None, "tunnel"), (None, "internal")])
def test_a_port_keeps_its_role_or_is_new(have, want):
    check_roles(bridge(*([have] if have else [])), {"p": want})
