"""What onemetal needs from the system, declared once: Python module or tool -> Debian package.

Hosts run the remotes under /usr/bin/python3 with Debian's packages, so a host
dependency is a Debian package. This table is the only list: the runner and the
entry points name the package in their one-line error, `.ci/install` installs
from it (`python3 drivers/onemetal/deps.py apt host lab build`), a test keeps the
README's host list equal to it and another checks that every third-party import
reachable from a host entry point is in it. Standard library only, because
`.ci/install` runs this file before anything else is installed.
"""

from __future__ import annotations

import sys

# Third-party Python modules imported on a host (by top-level name). Hosts parse oned's XML
# with the standard library's expat for start-up cost; only the KVM driver (onemetal.vmm) needs
# libvirt-python and lxml (it rewrites the domain XML), and imports them only in its actions.
HOST_MODULES: dict[str, str] = {"libvirt": "python3-libvirt", "lxml": "python3-lxml"}

# Commands the drivers run on a host (through onemetal.run), and what oned itself needs there.
HOST_TOOLS = {
    "python3": "python3",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-switch",
    "ovs-appctl": "openvswitch-switch",
    "nft": "nftables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "ethtool": "ethtool",
    "sysctl": "procps",
    "sudo": "sudo",
    "rsync": "rsync",  # `onehost sync` copies the remotes with it
    # Storage (DS actions on the frontend, TM and VMM actions on hosts).
    "qemu-img": "qemu-utils",
    "genisoimage": "genisoimage",  # the context ISO
    "mount": "mount",
    "umount": "mount",
    "chattr": "e2fsprogs",  # an immutable bare mountpoint: a lost mount can never be written
    "prlimit": "util-linux",  # bounds qemu-img info of untrusted images (OSSN-0057)
}

# What the lab and the demo start or call to build hosts on one machine (root only).
LAB_TOOLS = {
    "ovsdb-server": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "ovsdb-tool": "openvswitch-switch",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "visudo": "sudo",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "ping": "iputils-ping",
    "strace": "strace",  # the commands an action runs (onemetal.lab.exec_trace)
    # The lab's NFS (onemetal.lab.nfs): a real NFSv4 server, and a FUSE client of it (no kernel NFS).
    "ganesha.nfsd": "nfs-ganesha",
    "nfs-ls": "libnfs-utils",
    "mount.fuse3": "fuse3",  # mount's helper for `mount -t fuse.nfs4`
    # The lab's libvirt (onemetal.lab.libvirt): the daemons per host, qemu under TCG, and virsh.
    "libvirtd": "libvirt-daemon",
    "virtlogd": "libvirt-daemon",
    "virsh": "libvirt-clients",
    # libvirt's own schema check of the deployment files the lab writes (tests/test_one_docs.py)
    "virt-xml-validate": "libvirt-clients",
    "runuser": "util-linux",  # DS and TM actions run locally as oneadmin on the lab's frontend
    "qemu-system-x86_64": "qemu-system-x86",
    # How oned's one_tm/one_datastore read their oned.conf ARGUMENTS (GetoptLong): the installer's
    # tests check its driver-list edits with it (tests/test_install_oned_lists.py).
    "ruby": "ruby",
    # OpenNebula's stock kvm deploy parses the deployment file with it (bench/vmm_deploy.py).
    "xmllint": "libxml2-utils",
}

# Libraries, data files and Python modules of the lab only (never on a host): for its NFS the FSAL
# that exports a directory, libnfs through ctypes and the FUSE binding of the client
# (onemetal.lab.nfs_fuse); for its libvirt what libvirtd and qemu load.
LAB_LIBRARIES = {"libfsalvfs.so": "nfs-ganesha-vfs", "libnfs.so.13": "libnfs13",
                 # libvirtd's qemu driver, its config and group, the BIOS and the NICs' boot ROMs
                 "libvirt_driver_qemu.so": "libvirt-daemon-driver-qemu",
                 "libvirtd.conf": "libvirt-daemon-system",
                 "bios-256k.bin": "seabios", "efi-virtio.rom": "ipxe-qemu"}
LAB_MODULES = {"fuse": "python3-fuse"}

# What building the frontend's virtualenv needs (libvirt-python compiles against libvirt).
BUILD_PACKAGES = ("python3-venv", "python3-dev", "libvirt-dev", "pkg-config", "gcc")

GROUPS = {
    "host": (*HOST_MODULES.values(), *HOST_TOOLS.values()),
    "lab": (*LAB_TOOLS.values(), *LAB_LIBRARIES.values(), *LAB_MODULES.values()),
    "build": BUILD_PACKAGES,
}


def package_of_tool(tool: str) -> str | None:
    return HOST_TOOLS.get(tool) or LAB_TOOLS.get(tool)


def package_of_module(module: str) -> str | None:
    return HOST_MODULES.get(module.partition(".")[0])


def missing_module(module: str) -> str:
    """The one line a host without a Python module shows."""
    top = module.partition(".")[0]
    package = package_of_module(top)
    if package:
        return f"python module {top} missing: install the Debian package {package}"
    if top == "onemetal":
        return (f"python module {module} missing: the remotes tree is incomplete; "
                f"run `onehost sync --force` on the frontend")
    return f"python module {module} missing (not a declared host dependency)"


def host_packages() -> list[str]:
    return sorted(set(GROUPS["host"]))


def apt_packages(groups: list[str]) -> list[str]:
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise KeyError(f"unknown group {unknown[0]!r} (known: {', '.join(GROUPS)})")
    return sorted({pkg for group in groups for pkg in GROUPS[group]})


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "apt":
        print(f"usage: deps.py apt GROUP... (groups: {' '.join(GROUPS)})", file=sys.stderr)
        return 2
    try:
        print("\n".join(apt_packages(argv[1:])))
    except KeyError as exc:
        print(f"deps.py: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
