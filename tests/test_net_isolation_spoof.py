"""Anti-spoofing on real OVS: an attacker VM beside victims (one on its host, one across the
tunnel); what it forges is captured nowhere, what a guest legitimately sends still works."""

from __future__ import annotations

import time

import pytest
from conftest import installed_lab

from onemetal.lab import drive, spoof, traffic
from onemetal.lab.samples import SampleNic, vnm_vm_xml
from onemetal.net.antispoof import link_local

HOSTS = ["one-0", "one-1"]
GATEWAY = "192.168.4.1"


def nic(vm_id: int, **extra: str) -> SampleNic:
    return SampleNic(0, f"192.168.4.{vm_id - 390}", f"02:00:c0:a8:04:{vm_id - 390:02x}", vlan_id=400,
                     extra=(("IP6", f"fd00:4::{vm_id - 390}"), *extra.items()))


def ip6(n: SampleNic) -> str:
    return dict(n.extra)["IP6"]


def enable_ipv6(vm, address: str) -> None:
    """The guest's IPv6, with duplicate address detection; returns once the address is usable."""
    vm.run(["sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=0"])
    vm.run(["ip", "-6", "addr", "add", f"{address}/64", "dev", "eth0"])
    for _ in range(50):
        if "tentative" not in vm.run(["ip", "-6", "addr", "show", "dev", "eth0"]).stdout:
            return
        time.sleep(0.1)
    raise AssertionError(f"{vm.name}: {address} still tentative after 5 s")


@pytest.fixture(scope="module")
def lab():
    with installed_lab(2, mesh=HOSTS) as lab:
        yield lab


@pytest.fixture(scope="module")
def vms(lab):
    """victim1 and the attacker on one-0, victim2 on one-1, and on one-0 a VM whose NIC an
    admin marked FILTER_IP_SPOOFING=NO."""
    nics = {"victim1": nic(401), "victim2": nic(402), "attacker": nic(403),
            "trusted": nic(404, FILTER_IP_SPOOFING="NO")}
    hosts = {"victim1": "one-0", "victim2": "one-1", "attacker": "one-0", "trusted": "one-0"}
    out = {}
    for vm_id, (name, n) in enumerate(nics.items(), start=401):
        [out[name]] = drive.deploy(lab, hosts[name], vm_id, [n])
    for name in ("victim1", "victim2", "trusted"):
        enable_ipv6(out[name], ip6(nics[name]))
    return out, nics


def test_legitimate_traffic_still_works(lab, vms):
    vm, nics = vms
    attacker, v1, v2 = vm["attacker"], vm["victim1"], vm["victim2"]
    assert attacker.ping(v1.ip) and attacker.ping(v2.ip)  # ARP and IPv4
    traffic.listen(v2, 7000, lab.workdir)
    time.sleep(0.3)
    assert traffic.tcp_transfer(attacker, v2.ip, 7000)
    with spoof.capture({"victim1": v1, "victim2": v2}, seconds=4) as got:
        spoof.send(attacker, [spoof.dhcp_discover(nics["attacker"].mac)])
        enable_ipv6(attacker, ip6(nics["attacker"]))  # its DAD solicitation from ::
    discover = spoof.dhcp_discover(nics["attacker"].mac)
    assert spoof.reached(discover, got["victim1"]) and spoof.reached(discover, got["victim2"])
    dad = [f for f in got["victim1"] if f[12:14] == b"\x86\xdd" and f[22:38] == bytes(16)
           and f[54] == 135]
    assert dad, "no duplicate address detection reached victim1"
    for target in ("victim1", "victim2"):
        assert attacker.run(["ping", "-6", "-n", "-q", "-c", "1", "-W", "2", ip6(nics[target])],
                            check=False, timeout=10).returncode == 0


def forged(nics: dict[str, SampleNic], sender: str) -> dict[str, bytes]:
    me, v1, v2 = nics[sender], nics["victim1"], nics["victim2"]
    own6 = link_local(me.mac)
    return {
        "gratuitous ARP for the gateway": spoof.arp(me.mac, me.mac, GATEWAY, GATEWAY),
        "gratuitous ARP for a neighbour": spoof.arp(me.mac, me.mac, v1.ip, v1.ip),
        "IPv4 with a neighbour's source": spoof.ipv4_udp(v1.mac, me.mac, v2.ip, v1.ip, 5353, 9,
                                                         b"onemetal-forged-ipv4"),
        "IPv6 router advertisement": spoof.router_advertisement(me.mac, own6),
        "neighbour advertisement for a neighbour": spoof.neighbour_advertisement(
            me.mac, own6, ip6(v1), me.mac),
        # from its own addresses, but a server's: another VM's lease and default route
        "rogue DHCP offer": spoof.dhcp_offer(me.mac, me.ip, v1.ip),
        "rogue DHCPv6 advertise": spoof.dhcpv6_advertise(me.mac, own6),
        "RA behind a long Destination Options header (first fragment)":
            spoof.fragmented_router_advertisement(me.mac, own6)[0],
        "DHCPv6 advertise behind a long Destination Options header (first fragment)":
            spoof.fragmented_dhcpv6_advertise(me.mac, own6)[0],
    }


def forged_mac(nics: dict[str, SampleNic], sender: str) -> dict[str, bytes]:
    me, v1 = nics[sender], nics["victim1"]
    return {"a neighbour's source MAC": spoof.ipv4_udp(v1.mac, nics["victim2"].mac, me.ip, v1.ip,
                                                       5353, 9, b"onemetal-forged-mac"),
            "ARP with a neighbour's hardware address": spoof.arp(me.mac, v1.mac, me.ip, me.ip)}


def honest(nics: dict[str, SampleNic], sender: str) -> dict[str, bytes]:
    me, v1 = nics[sender], nics["victim1"]
    return {"gratuitous ARP for itself": spoof.arp(me.mac, me.mac, me.ip, me.ip),
            "IPv4 from its own address": spoof.ipv4_udp(v1.mac, me.mac, me.ip, v1.ip, 5353, 9,
                                                        b"onemetal-honest")}


def sent_and_seen(sender, victims, frames: dict[str, bytes]) -> dict[str, list[str]]:
    """For each frame, the victims (by key) it reached."""
    with spoof.capture(victims) as got:
        spoof.send(sender, list(frames.values()))
    return {what: [v for v in victims if spoof.reached(f, got[v])] for what, f in frames.items()}


def test_what_the_attacker_forges_reaches_nobody(vms):
    vm, nics = vms
    frames = {**forged(nics, "attacker"), **forged_mac(nics, "attacker"), **honest(nics, "attacker")}
    seen = sent_and_seen(vm["attacker"], {v: vm[v] for v in ("victim1", "victim2")}, frames)
    assert seen["gratuitous ARP for itself"] == ["victim1", "victim2"]  # the capture works
    assert seen["IPv4 from its own address"] == ["victim1"]
    leaked = {what: who for what, who in seen.items() if who and what not in honest(nics, "attacker")}
    assert leaked == {}


def test_filter_ip_spoofing_no_turns_the_ip_checks_off_and_keeps_the_mac_check(vms):
    vm, nics = vms
    ip_forged, mac_forged = forged(nics, "trusted"), forged_mac(nics, "trusted")
    seen = sent_and_seen(vm["trusted"], {"victim1": vm["victim1"]}, {**ip_forged, **mac_forged})
    assert {what: seen[what] for what in ip_forged} == {what: ["victim1"] for what in ip_forged}
    assert {what: seen[what] for what in mac_forged} == {what: [] for what in mac_forged}


def aliased_attacker(lab, alias: SampleNic) -> tuple[object, str]:
    """VM 405 on one-0, with `alias` riding on its NIC 0; returns the VM and its document."""
    n = nic(405)
    xml = vnm_vm_xml(405, "one-0", [n], aliases=[alias])
    drive.check(drive.vnm(lab, "one-0", "pre", [], xml), "pre")
    vm = lab.add_vm("one-0", "vm405-0", "br-mesh", f"{n.ip}/24", mac=n.mac, port="one-405-0")
    drive.check(drive.vnm(lab, "one-0", "post", ["deploy-405", "one-0"], xml), "post")
    return vm, xml


def test_an_alias_from_another_vnet_does_not_let_the_port_arp_for_its_address(lab, vms):
    vm, nics = vms
    victims = {v: vm[v] for v in ("victim1", "victim2")}
    v1 = nics["victim1"]
    # oned leased the alias from the tenant's vnet 7 (VNI 500), where victim1's IP is free.
    foreign = SampleNic(1, v1.ip, "02:00:c0:a8:05:0b", vlan_id=500,
                        extra=(("PARENT_ID", "0"), ("NETWORK_ID", "7")))
    attacker, _ = aliased_attacker(lab, foreign)
    mac = nic(405).mac
    frames = {"for the alias": spoof.arp(mac, mac, v1.ip, v1.ip),
              "for itself": spoof.arp(mac, mac, nic(405).ip, nic(405).ip)}
    assert sent_and_seen(attacker, victims, frames) == {"for the alias": [],
                                                        "for itself": ["victim1", "victim2"]}
    # The same alias on the parent's own vnet is the NIC's address (so the check above can fail).
    own = SampleNic(1, "192.168.4.30", "02:00:c0:a8:04:1e", vlan_id=400,
                    extra=(("PARENT_ID", "0"),))
    xml = vnm_vm_xml(405, "one-0", [nic(405)], aliases=[own])
    drive.check(drive.vnm(lab, "one-0", "update_nic", ["deploy-405", "0"], xml), "update_nic")
    seen = sent_and_seen(attacker, victims, {"alias": spoof.arp(mac, mac, own.ip, own.ip)})
    assert seen == {"alias": ["victim1", "victim2"]}
