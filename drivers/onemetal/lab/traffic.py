"""Traffic between lab VMs: TCP transfers, listeners, one UDP broadcast; bounded by timeouts."""

from __future__ import annotations

import os
import subprocess

from onemetal.lab.vm import LabVM

# Accepts connections forever; answers each with the number of bytes it read before EOF.
_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); c.settimeout(10); n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            n += len(b)
        c.sendall(str(n).encode())
    except OSError:
        pass
    c.close()
"""
_CLIENT = """
import socket, sys
ip, port, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = socket.create_connection((ip, port), timeout=timeout)
c.sendall(b"x" * size); c.shutdown(socket.SHUT_WR)
print(c.recv(64).decode())
"""
_BROADCAST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.sendto(b"onemetal-lab", (sys.argv[1], 9))
"""


def listen(vm: LabVM, port: int, log_dir: str) -> subprocess.Popen[bytes]:
    """A TCP server in the VM (ended with the lab: it lives in the VM's namespace)."""
    log = os.path.join(log_dir, f"{vm.name}-{port}.log")
    return vm.runner.spawn(["python3", "-c", _SERVER, str(port)], log)


def tcp_transfer(client: LabVM, ip: str, port: int, size: int = 1 << 20,
                 timeout: float = 3.0) -> bool:
    """Send `size` bytes to a `listen`er; True when it confirms every byte arrived."""
    result = client.run(["python3", "-c", _CLIENT, ip, str(port), str(size), str(timeout)],
                        check=False, timeout=timeout + 10)
    return result.returncode == 0 and result.stdout.strip() == str(size)


def broadcast(vm: LabVM, address: str) -> None:
    """Exactly one UDP datagram to a broadcast address (no ARP needed first)."""
    vm.run(["python3", "-c", _BROADCAST, address])


def rx_packets(vm: LabVM) -> int:
    return int(vm.run(["cat", "/sys/class/net/eth0/statistics/rx_packets"]).stdout)


def tx_packets(vm: LabVM) -> int:
    return int(vm.run(["cat", "/sys/class/net/eth0/statistics/tx_packets"]).stdout)
