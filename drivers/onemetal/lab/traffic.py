"""Traffic between lab VMs: TCP transfers, listeners, one UDP broadcast; bounded by timeouts."""

from __future__ import annotations

import os
import subprocess

from onemetal.lab.vm import LabVM

# Accepts connections forever; answers each with the number of bytes it read before EOF,
# the address the connection came from, and its own address (which VM answered).
_SERVER = """
import socket, sys, threading
def serve(c, peer):
    c.settimeout(10); n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            n += len(b)
        c.sendall(f"{n} {peer[0]} {c.getsockname()[0]}".encode())
    except OSError:
        pass
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
while True:
    threading.Thread(target=serve, args=s.accept(), daemon=True).start()
"""
_CLIENT = """
import socket, sys
ip, port, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = socket.create_connection((ip, port), timeout=timeout)
c.sendall(b"x" * size); c.shutdown(socket.SHUT_WR)
print(c.recv(128).decode())
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
    return seen_from(client, ip, port, size, timeout) is not None


def _transfer(client: LabVM, ip: str, port: int, size: int, timeout: float) -> list[str]:
    """[source seen, listener's own address] of a complete transfer; [] if none arrived."""
    result = client.run(["python3", "-c", _CLIENT, ip, str(port), str(size), str(timeout)],
                        check=False, timeout=timeout + 10)
    words = result.stdout.split()
    ok = result.returncode == 0 and len(words) == 3 and words[0] == str(size)
    return words[1:] if ok else []


def seen_from(client: LabVM, ip: str, port: int, size: int = 1 << 16,
              timeout: float = 3.0) -> str | None:
    """The source address the `listen`er saw for a complete transfer; None if none arrived."""
    words = _transfer(client, ip, port, size, timeout)
    return words[0] if words else None


def answered_by(client: LabVM, ip: str, port: int, size: int = 1 << 16,
                timeout: float = 3.0) -> str | None:
    """The address of the `listen`er that took a complete transfer to `ip` (behind a DNAT, the
    VM it led to); None if none arrived."""
    words = _transfer(client, ip, port, size, timeout)
    return words[1] if words else None


_WAIT = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close(); break
    except OSError:
        if time.monotonic() > deadline: sys.exit(1)
        time.sleep(0.02)
"""


def wait_listening(vm: LabVM, port: int, timeout: float = 10.0) -> None:
    """Until the `listen`er in `vm` accepts on `port` (bounded; raises CommandError after)."""
    vm.run(["python3", "-c", _WAIT, str(port), str(timeout)], timeout=timeout + 10)


# Keeps one connection open, one byte every 0.1 s, until it breaks or `seconds` pass.
_LONG = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
start = time.monotonic()
try:
    while time.monotonic() - start < float(sys.argv[3]):
        c.sendall(b"x"); time.sleep(0.1)
        c.settimeout(0.05)
        try:
            if c.recv(1) == b"": raise OSError("closed by peer")
        except socket.timeout:
            pass
    print("alive", flush=True)
except OSError as exc:
    print("stopped", round(time.monotonic() - start, 1), type(exc).__name__, flush=True)
"""


def open_flow(client: LabVM, ip: str, port: int, seconds: float, log_dir: str) -> str:
    """Start a long-lived connection in the background; returns the log it reports to."""
    log = f"{log_dir}/flow-{client.name}-{ip}-{port}.log"
    client.runner.spawn(["python3", "-c", _LONG, ip, str(port), str(seconds)], log)
    return log


def broadcast(vm: LabVM, address: str) -> None:
    """Exactly one UDP datagram to a broadcast address (no ARP needed first)."""
    vm.run(["python3", "-c", _BROADCAST, address])


def rx_packets(vm: LabVM) -> int:
    return int(vm.run(["cat", "/sys/class/net/eth0/statistics/rx_packets"]).stdout)


def tx_packets(vm: LabVM) -> int:
    return int(vm.run(["cat", "/sys/class/net/eth0/statistics/tx_packets"]).stdout)
