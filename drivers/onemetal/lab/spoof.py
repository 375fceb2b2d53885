"""Hand-made frames for the anti-spoofing tests: built here, sent and captured with AF_PACKET
sockets inside lab VMs (no packet tool needed), every wait bounded.

A frame "reached" a VM when a frame the VM received starts with its bytes (short frames may
arrive padded; OVS switches frames unchanged, also across a tunnel).
"""

from __future__ import annotations

import ipaddress
import select
import struct
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator

from onemetal.lab.vm import LabVM

BROADCAST = "ff:ff:ff:ff:ff:ff"
_SEND = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in sys.argv[2:]:
    s.send(bytes.fromhex(frame))
"""
CAPTURE = """
import select, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
while (left := end - time.monotonic()) > 0:
    if select.select([s], [], [], left)[0]:
        data, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:
            print(data.hex(), flush=True)
"""


def _mac(text: str) -> bytes:
    return bytes(int(b, 16) for b in text.split(":"))


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    return _mac(dst) + _mac(src) + struct.pack("!H", ethertype) + payload


def arp(src_mac: str, sha: str, spa: str, tpa: str, op: int = 1, dst: str = BROADCAST) -> bytes:
    """An ARP frame; sha/spa == what it claims (a gratuitous one when spa == tpa)."""
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + _mac(sha) + _ip(spa) + bytes(6) + _ip(tpa)
    return ether(dst, src_mac, 0x0806, body)


def ipv4_udp(dst_mac: str, src_mac: str, src: str, dst: str, sport: int, dport: int,
             payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, _ip(src), _ip(dst))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return ether(dst_mac, src_mac, 0x0800, header + udp)


def dhcp_discover(src_mac: str) -> bytes:
    """A BOOTP discover from 0.0.0.0 to 255.255.255.255, UDP 68 -> 67."""
    bootp = (struct.pack("!BBBBIHH", 1, 1, 6, 0, 0x6F6D0001, 0, 0x8000) + bytes(16)
             + _mac(src_mac) + bytes(10) + bytes(192) + b"\x63\x82\x53\x63\x35\x01\x01\xff")
    return ipv4_udp(BROADCAST, src_mac, "0.0.0.0", "255.255.255.255", 68, 67, bootp)


def ipv6(dst_mac: str, src_mac: str, src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    header = struct.pack("!IHBB", 6 << 28, len(payload), next_header, 255) + _ip(src) + _ip(dst)
    return ether(dst_mac, src_mac, 0x86DD, header + payload)


def _icmp6_message(src: str, dst: str, kind: int, body: bytes) -> bytes:
    message = struct.pack("!BBH", kind, 0, 0) + body
    pseudo = _ip(src) + _ip(dst) + struct.pack("!I3xB", len(message), 58)
    return message[:2] + struct.pack("!H", _checksum(pseudo + message)) + message[4:]


def icmp6(dst_mac: str, src_mac: str, src: str, dst: str, kind: int, body: bytes) -> bytes:
    return ipv6(dst_mac, src_mac, src, dst, 58, _icmp6_message(src, dst, kind, body))


def udp6(dst_mac: str, src_mac: str, src: str, dst: str, sport: int, dport: int,
         payload: bytes) -> bytes:
    """UDP over IPv6 with checksum 0 (the receiving stack may drop it; the capture does not)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv6(dst_mac, src_mac, src, dst, 17, udp)


def dhcp_offer(src_mac: str, server: str, offered: str) -> bytes:
    """A DHCP server's broadcast offer, UDP 67 -> 68: a rogue server on a shared vnet."""
    bootp = (struct.pack("!BBBBIHH", 2, 1, 6, 0, 0x6F6D0002, 0, 0x8000) + bytes(4) + _ip(offered)
             + _ip(server) + bytes(4) + bytes(16) + bytes(192)
             + b"\x63\x82\x53\x63\x35\x01\x02\x03\x04" + _ip(server) + b"\xff")
    return ipv4_udp(BROADCAST, src_mac, server, "255.255.255.255", 67, 68, bootp)


def dhcpv6_advertise(src_mac: str, src: str) -> bytes:
    """A DHCPv6 server's advertise (type 2), UDP 547 -> 546, to all DHCP agents."""
    return udp6("33:33:00:01:00:02", src_mac, src, "ff02::1:2", 547, 546, b"\x02\x6f\x6d\x02")


def behind_options(dst_mac: str, src_mac: str, src: str, dst: str, next_header: int,
                   message: bytes) -> list[bytes]:
    """`message` split so that its header is all in the second fragment: the first holds the
    fragment header and a 64-byte Destination Options header, all a guard reading it sees."""
    options = struct.pack("!BB", next_header, 7) + b"\x01\x3c" + bytes(60)  # PadN to 64 bytes
    first = struct.pack("!BBHI", 60, 0, 0x0001, 0x6F6D) + options
    later = struct.pack("!BBHI", 60, 0, len(options) & 0xFFF8, 0x6F6D) + message
    return [ipv6(dst_mac, src_mac, src, dst, 44, part) for part in (first, later)]


def fragmented_router_advertisement(src_mac: str, src: str) -> list[bytes]:
    message = _icmp6_message(src, "ff02::1", 134, struct.pack("!BBHII", 64, 0, 1800, 0, 0)
                             + b"\x01\x01" + _mac(src_mac))
    return behind_options("33:33:00:00:00:01", src_mac, src, "ff02::1", 58, message)


def fragmented_dhcpv6_advertise(src_mac: str, src: str) -> list[bytes]:
    message = struct.pack("!HHHH", 547, 546, 12, 0) + b"\x02\x6f\x6d\x02"
    return behind_options("33:33:00:01:00:02", src_mac, src, "ff02::1:2", 17, message)


def router_advertisement(src_mac: str, src: str) -> bytes:
    """An RA offering a default route (lifetime 1800 s), with its source link-layer option."""
    body = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + b"\x01\x01" + _mac(src_mac)
    return icmp6("33:33:00:00:00:01", src_mac, src, "ff02::1", 134, body)


def neighbour_advertisement(src_mac: str, src: str, target: str, tll: str) -> bytes:
    """An unsolicited, overriding NA: "target is at tll"."""
    body = struct.pack("!I", 0x20000000) + _ip(target) + b"\x02\x01" + _mac(tll)
    return icmp6("33:33:00:00:00:01", src_mac, src, "ff02::1", 136, body)


def send(vm: LabVM, frames: list[bytes]) -> None:
    vm.run(["python3", "-c", _SEND, "eth0", *(f.hex() for f in frames)])


CAPTURE_START = 10.0  # seconds a capture may take to open its socket


def open_capture(vm: LabVM, seconds: float) -> subprocess.Popen[str]:
    """CAPTURE on `vm`'s eth0 for at most `seconds`; the caller ends it."""
    return subprocess.Popen([*vm.runner.prefix, "python3", "-c", CAPTURE, "eth0", str(seconds)],
                            stdout=subprocess.PIPE, text=True)


def capture_ready(proc: subprocess.Popen[str], deadline: float) -> bool:
    """Whether the capture said its socket is open before `deadline` (time.monotonic)."""
    assert proc.stdout is not None
    ready = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]
    return bool(ready) and proc.stdout.readline().strip() == "ready"


@contextmanager
def capture(vms: dict[str, LabVM], seconds: float = 2.0) -> Iterator[dict[str, list[bytes]]]:
    """Frames each VM (by the key it is given under) receives on eth0 while the block runs
    (and until `seconds` after the captures started); filled in when the block ends."""
    procs = [open_capture(vm, seconds) for vm in vms.values()]
    got: dict[str, list[bytes]] = {}
    try:
        deadline = time.monotonic() + CAPTURE_START
        for proc in procs:  # each socket is open before anything is sent
            if not capture_ready(proc, deadline):
                raise AssertionError("a capture did not start")
        yield got
        for key, proc in zip(vms, procs):
            out, _ = proc.communicate(timeout=seconds + 10)
            got[key] = [bytes.fromhex(line) for line in out.split()]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def reached(frame: bytes, received: list[bytes]) -> bool:
    return any(r.startswith(frame) for r in received)
