"""Lab hosts resolve each other's names, and the machine's own, from the moment they start."""

import socket

from onemetal.lab import Lab


def test_every_lab_host_resolves_every_name_from_its_start():
    with Lab(hosts=2) as lab:
        names = {host.name: host.address for host in lab.hosts}
        names["frontend"] = lab.frontend_address
        for host in lab.hosts:
            # Through the anchor's mount namespace, as root plumbing and the daemons see it.
            seen = {name: host.run(["getent", "hosts", name]).stdout.split()[0] for name in names}
            assert seen == names, host.name
            assert host.run(["getent", "hosts", socket.gethostname()]).returncode == 0
            # The SSH server's children too: oneadmin's commands resolve the other hosts.
            other = next(h for h in lab.hosts if h is not host)
            out = lab.ssh(host.name).run(["getent", "hosts", other.name]).stdout
            assert out.split()[0] == other.address, host.name
