"""Real hosts on one machine, for tests and the demo.

Each host is a network namespace plus a private mount namespace (its own /run,
/var/tmp and /var/lib/onemetal), with its own ovsdb-server and ovs-vswitchd
(userspace datapath), nftables, and an sshd on its underlay address. Hosts sit
on an underlay bridge in a namespace of its own; a frontend namespace reaches
every host by SSH as oneadmin, with a key the lab generates, and sudo on each host
grants OpenNebula's node rules plus onemetal's fragment; VMs are namespaces plugged into
a host's OVS bridge. docs/design.md ("The lab") says what was measured on this machine.

    with Lab(hosts=3) as lab:
        lab.ssh("one-1").run(["hostname"])
"""

from onemetal.lab.lab import Lab, LabError

__all__ = ["Lab", "LabError"]
