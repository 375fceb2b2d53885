"""Anti-spoofing: what a VM port may send as, rendered into the CLASSIFY table (pure).

A frame from a VM port enters the pipeline only if it carries the NIC's MAC (always), and,
unless an administrator set FILTER_IP_SPOOFING=NO on the NIC, only if its addresses are the
NIC's own: IPv4 source, ARP sender (hardware and protocol address), IPv6 source, and in
neighbour discovery the target and the link-layer address options. Stock OpenNebula makes the
IP part opt-in; here it is on by default, because the NAT gateway translates by source address
and a forged one would borrow another VM's Elastic IP.

Exceptions, as a guest needs them before it has an address: DHCP discover (0.0.0.0 ->
255.255.255.255, UDP 68 -> 67), ARP probes (sender 0.0.0.0, RFC 5227), router solicitations
and duplicate address detection (neighbour solicitations from ::, for the NIC's own addresses).
Router advertisements and redirects (ICMPv6 134, 137, ICMP 5) never pass with the IP part on: a VM is
not the vnet's router; nor do DHCP and DHCPv6 server replies (UDP from 67, 547), ICMPv6 fragments,
first IPv6 fragments other than TCP, UDP and ESP, and first TCP or UDP fragments without their
ports. With it off (a NIC an admin trusts to route) only the MAC is checked.

>>> g = guard("02:00:c0:a8:00:05", ["192.168.0.5"], ["2001:db8::5"])
>>> g.ipv6
('2001:db8::5', 'fe80::c0ff:fea8:5')
"""

from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from onemetal.net.openflow import Flow
from onemetal.record import value

NO_MAC = "00:00:00:00:00:00"  # how OVS shows an absent SLL/TLL option
ROUTER_ONLY = (("icmp6", 134), ("icmp6", 137), ("icmp", 5))
# A DHCP or DHCPv6 server's replies (from port 67, 547) on a shared vnet are another tenant's
# leases; an ICMPv6 fragment is how an RA gets past a guard that reads only its first bytes.
SERVER_ONLY = ("udp,tp_src=67", "udp6,tp_src=547", "icmp6,nw_frag=yes")
# A first IPv6 fragment may push the upper header into a later one (a long Destination Options
# header): it passes only when OVS read it as one of these, whose port checks then apply.
FIRST_FRAGMENT_OK = ("tcp6", "udp6", "ipv6,nw_proto=50")
# ...and only with its ports in it: OVS reads the ports of a header it does not have as 0, and
# the guest would find a DHCPv6 reply (or any port) behind them after reassembly.
HEADERLESS = tuple(f"{proto},nw_frag=first,tp_src=0,tp_dst=0" for proto in ("tcp", "udp", "tcp6",
                                                                          "udp6"))


@value
class Guard:
    """The addresses one VM port may use; ip False: only its MAC is checked."""
    mac: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    ip: bool = True


def link_local(mac: str) -> str:
    """The EUI-64 link-local address of a MAC (what a guest derives, and OpenNebula's IP6_LINK)."""
    octets = bytearray(int(b, 16) for b in mac.split(":"))
    octets[0] ^= 0x02
    eui = bytes(octets[:3]) + b"\xff\xfe" + bytes(octets[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def slaac(address: str, mac: str) -> bool:
    """The address's interface id is the MAC's EUI-64, as oned derives IP6_GLOBAL and IP6_ULA
    from an address range's prefixes: one the tenant wrote otherwise is not the NIC's."""
    return (ipaddress.IPv6Address(address).packed[8:]
            == ipaddress.IPv6Address(link_local(mac)).packed[8:])


def guard(mac: str, ipv4: Iterable[str], ipv6: Iterable[str], ip: bool = True) -> Guard:
    """A port's guard; a NIC with IPv6 addresses also keeps the link-local of its MAC."""
    v6 = list(dict.fromkeys(ipv6))
    if v6:
        v6.append(link_local(mac))
    return Guard(mac=mac.lower(), ipv4=tuple(dict.fromkeys(ipv4)),
                 ipv6=tuple(dict.fromkeys(v6)), ip=ip)


def mac_only(mac: str) -> Guard:
    return Guard(mac=mac.lower(), ip=False)


def classify_flows(port: int, vni: int, g: Guard, table: int, neighbour_table: int,
                   accept: str) -> list[Flow]:
    """The port's flows in CLASSIFY (`table`) and its neighbour discovery checks."""
    key = f"in_port={port},dl_src={g.mac}"
    go = f"set_field:{vni}->tun_id,{accept}"
    if not g.ip:
        return [Flow(table, 100, f"{key},arp,arp_sha={g.mac}", go, port),
                Flow(table, 90, f"{key},arp", "drop", port),
                Flow(table, 80, key, go, port)]
    flows = [Flow(table, 120, f"{key},{proto},icmp_type={t}", "drop", port)
             for proto, t in ROUTER_ONLY]
    flows += [Flow(table, 120, f"{key},{match}", "drop", port)
              for match in SERVER_ONLY + HEADERLESS]
    flows.append(Flow(table, 117, f"{key},ipv6,nw_frag=first", "drop", port))
    for ip in (*g.ipv4, "0.0.0.0"):
        flows.append(Flow(table, 110, f"{key},arp,arp_sha={g.mac},arp_spa={ip}"
                          + (",arp_op=1" if ip == "0.0.0.0" else ""), go, port))
    flows += [Flow(table, 100, f"{key},ip,nw_src={ip}", go, port) for ip in g.ipv4]
    flows.append(Flow(table, 100, f"{key},udp,nw_src=0.0.0.0,nw_dst=255.255.255.255,"
                      "tp_src=68,tp_dst=67", go, port))
    flows.append(Flow(table, 100, f"{key},icmp6,ipv6_src=::,icmp_type=133,icmp_code=0", go, port))
    check = f"set_field:{vni}->tun_id,resubmit(,{neighbour_table})"
    for ip in g.ipv6:
        flows += [Flow(table, 115, f"{key},icmp6,ipv6_src={ip},icmp_type={t},icmp_code=0", check,
                       port) for t in (135, 136)]
        flows.append(Flow(table, 115, f"{key},icmp6,ipv6_src=::,icmp_type=135,icmp_code=0,"
                          f"nd_target={ip},nd_sll={NO_MAC}", go, port))  # DAD
        flows.append(Flow(table, 100, f"{key},ipv6,ipv6_src={ip}", go, port))
        flows += [Flow(table, 118, f"{key},{proto},ipv6_src={ip},nw_frag=first", go, port)
                  for proto in FIRST_FRAGMENT_OK]
    return flows + _neighbour_flows(port, g, neighbour_table, accept)


def _neighbour_flows(port: int, g: Guard, table: int, accept: str) -> list[Flow]:
    """Solicitations may only give the port's MAC; advertisements only claim its addresses."""
    key = f"in_port={port},icmp6,icmp_code=0"
    flows = [Flow(table, 100, f"{key},icmp_type=135,nd_sll={mac}", accept, port)
             for mac in (g.mac, NO_MAC)] if g.ipv6 else []
    for ip in g.ipv6:
        flows += [Flow(table, 100, f"{key},icmp_type=136,nd_target={ip},nd_tll={mac}", accept, port)
                  for mac in (g.mac, NO_MAC)]
    return flows
