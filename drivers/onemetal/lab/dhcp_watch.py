"""Watch a lab VM's NIC for a guest's DHCP DISCOVER: proof that a real guest's NIC works on its vnet
(a disk-less TCG guest's iPXE asks DHCP, and the broadcast floods the vnet across the mesh)."""

from __future__ import annotations

import select
import struct
import time

from onemetal.lab.spoof import CAPTURE_START, capture_ready, open_capture
from onemetal.lab.vm import LabVM


def is_discover_from(frame: bytes, mac: str) -> bool:
    """A DHCP DISCOVER (BOOTP to UDP 67, option 53 = 1) sent by `mac`."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return False
    udp = 14 + (frame[14] & 0x0F) * 4
    bootp = udp + 8
    if struct.unpack("!H", frame[udp + 2:udp + 4])[0] != 67 or \
            frame[bootp + 28:bootp + 34] != bytes.fromhex(mac.replace(":", "")):
        return False
    return b"\x35\x01\x01" in frame[bootp + 240:]  # a cheap scan: message type DISCOVER


class DhcpWatch:
    """A capture on `vm`'s eth0 for at most `seconds`, open once the constructor returns."""

    def __init__(self, vm: LabVM, seconds: float) -> None:
        self.started = time.monotonic()
        self._proc = open_capture(vm, seconds)
        if not capture_ready(self._proc, self.started + CAPTURE_START):
            self.stop()
            raise RuntimeError(f"the capture on {vm.name} did not start within "
                               f"{CAPTURE_START:g} s")

    def first_discover(self, mac: str, seconds: float) -> float | None:
        """Seconds from the watch's start to the first DISCOVER from `mac`, waiting at most
        `seconds` more; None if none came."""
        out = self._proc.stdout
        assert out is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([out], [], [], left)[0]:
                break
            line = out.readline()
            if not line:
                break
            if is_discover_from(bytes.fromhex(line.strip()), mac):
                return time.monotonic() - self.started
        return None

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
