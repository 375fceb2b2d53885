"""Section 8: what the KVM driver needs from the node: libvirtd answering oneadmin on its socket
within a timeout, oneadmin in group libvirt, a qemu system emulator, and /dev/kvm."""

from __future__ import annotations

import grp
import os
import socket

from onemetal.doctor.packages import tool_path
from onemetal.doctor_report import FAIL, OK, WARN, Check

SOCKETS = {"qemu:///system": "/run/libvirt/libvirt-sock",
           "qemu:///session": ""}  # a session socket is per user: not what oned's driver uses
EMULATORS = ("qemu-system-x86_64", "qemu-system-aarch64", "qemu-kvm", "kvm")
INSTALL = "apt-get install libvirt-daemon-system qemu-system-x86"


def socket_check(uri: str, timeout: float) -> Check:
    name = "libvirt socket"
    path = SOCKETS.get(uri, "")
    if not path:
        return Check(name, WARN, f"vmm.uri {uri}: no local socket to check")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        return Check(name, FAIL, f"{path}: {exc.strerror or exc}",
                     "systemctl enable --now libvirtd (and check that oneadmin is in group libvirt)")
    finally:
        sock.close()
    return Check(name, OK, f"{path} accepts oneadmin within {timeout:g} s")


def group_check() -> Check:
    try:
        gid = grp.getgrnam("libvirt").gr_gid
    except KeyError:
        return Check("libvirt group", FAIL, "no group libvirt", INSTALL)
    if gid in os.getgroups() or gid == os.getgid():
        return Check("libvirt group", OK, "oneadmin is in group libvirt")
    return Check("libvirt group", FAIL, "oneadmin is not in group libvirt",
                 "as root: adduser oneadmin libvirt (then restart its sessions)")


def emulator_check() -> Check:
    found = [p for p in (tool_path(e) for e in EMULATORS) if p]
    if not found:
        return Check("qemu", FAIL, f"none of {', '.join(EMULATORS)} found", INSTALL)
    return Check("qemu", OK, found[0])


def kvm_check() -> Check:
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Check("kvm", OK, "/dev/kvm usable")
    return Check("kvm", WARN, "/dev/kvm missing or not usable: guests run emulated (TCG), slowly",
                 "enable virtualisation (a .metal instance), load kvm_intel or kvm_amd")


def run(uri: str, timeout: float) -> list[Check]:
    return [socket_check(uri, timeout), group_check(), emulator_check(), kvm_check()]
