"""NAT gateway and Elastic IPs: the objects onenat manages, each checked strictly (pure).

A pool holds (Elastic IP, private secondary IP) pairs: the provider maps the public
EIP 1:1 onto the private address on the gateway's interface. A NATed vnet has a
subnet, the gateway address its VMs route through (on the gateway host's bridge)
and the address the subnet is SNATed to. A mapping ties one EIP to one VM NIC; a
forward sends one private address:port/proto to a VM address:port.
"""

from __future__ import annotations

import ipaddress

from onemetal.errors import InputError
from onemetal.net.vnet import MAX_VNI
from onemetal.opennebula import values
from onemetal.record import value

PROTOCOLS = ("tcp", "udp")


def ipv4(value: str, field: str) -> str:
    """A dotted IPv4 address, strictly (no '10.1', no leading zeros read as octal, no integer).

    The standard library's parser is as strict as inet_pton since Python 3.9.5, and costs a
    host a fraction of netaddr's import."""
    if not isinstance(value, str):
        raise InputError(f"{value!r} is not an IPv4 address", field)
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise InputError(f"{value!r} is not an IPv4 address", field) from None


def subnet(value: str, field: str) -> ipaddress.IPv4Network:
    address, slash, length = value.strip().partition("/")
    if not slash or not length.isdigit() or int(length) > 32:
        raise InputError(f"{value!r} is not an IPv4 network like 192.168.0.0/24", field)
    cidr = f"{ipv4(address, field)}/{int(length)}"
    network = ipaddress.IPv4Network(cidr, strict=False)
    if str(network.network_address) != cidr.partition("/")[0]:
        raise InputError(f"{value!r} has host bits set (did you mean {network}?)", field)
    return network


def endpoint(text: str, field: str, with_protocol: bool = True) -> tuple[str, str, str]:
    """ADDRESS:PORT/PROTO (or ADDRESS:PORT) split into its words, each still to be checked."""
    address, _, rest = text.partition(":")
    number, _, proto = rest.partition("/")
    if not number or (with_protocol and not proto) or (not with_protocol and proto):
        shape = "ADDRESS:PORT/PROTO like 10.0.0.2:53/udp" if with_protocol else "ADDRESS:PORT"
        raise InputError(f"{text!r} is not {shape}", field)
    return address, number, proto


def port(value: str | int, field: str) -> int:
    return values.integer(str(value), field, 1, 65535)


def protocol(value: str, field: str) -> str:
    lowered = value.strip().lower()
    if lowered not in PROTOCOLS:
        raise InputError(f"{value!r} is not one of {', '.join(PROTOCOLS)}", field)
    return lowered


@value(order=True)
class Address:
    eip: str
    private_ip: str
    pool: str


@value(order=True)
class Vnet:
    vnet_id: int
    subnet: str
    gateway: str
    snat_ip: str
    vni: int

    @classmethod
    def checked(cls, vnet_id: int | str, cidr: str, gateway: str, snat_ip: str,
                vni: int | str) -> "Vnet":
        network = subnet(cidr, "subnet")
        gw = ipv4(gateway, "gateway")
        if ipaddress.IPv4Address(gw) not in network or gw in (str(network.network_address),
                                                             str(network.broadcast_address)):
            raise InputError(f"{gw} is not a host address of {network}", "gateway")
        return cls(values.integer(str(vnet_id), "vnet", 0), str(network), gw,
                   ipv4(snat_ip, "snat"), values.integer(str(vni), "vni", 1, MAX_VNI))

    def contains(self, ip: str) -> bool:
        return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(self.subnet)


@value(order=True)
class Mapping:
    eip: str
    private_ip: str
    vm_id: int
    nic_id: int
    vm_ip: str
    vnet_id: int


@value(order=True)
class Forward:
    private_ip: str
    port: int
    protocol: str
    vm_ip: str
    vm_port: int

    @classmethod
    def checked(cls, private_ip: str, public_port: str | int, proto: str, vm_ip: str,
                vm_port: str | int) -> "Forward":
        return cls(ipv4(private_ip, "address"), port(public_port, "port"),
                   protocol(proto, "protocol"), ipv4(vm_ip, "vm-ip"), port(vm_port, "vm-port"))


@value
class NatState:
    """Everything the gateway's table is rendered from, and the store generation it was read at
    (the gateway refuses a push older than the one it applied)."""
    vnets: tuple[Vnet, ...]
    addresses: tuple[Address, ...]
    mappings: tuple[Mapping, ...]
    forwards: tuple[Forward, ...]
    generation: int = 0


@value
class Owner:
    """The VM's owner as oned records it (the VM's UID and GID): what quotas count."""
    uid: int
    gid: int


@value
class Quota:
    """Most EIPs one user / one group may hold through the hooks; UNLIMITED lifts a limit."""
    user: int
    group: int

    UNLIMITED = -1


def pairs(text: str, field: str) -> list[tuple[str, str]]:
    """`EIP=PRIVATE_IP[,EIP=PRIVATE_IP...]` as checked pairs."""
    out = []
    for index, item in enumerate(p for p in text.replace(" ", "").split(",") if p):
        eip, sep, private = item.partition("=")
        if not sep:
            raise InputError(f"{item!r} is not EIP=PRIVATE_IP", f"{field}[{index}]")
        out.append((ipv4(eip, f"{field}[{index}] (EIP)"), ipv4(private, f"{field}[{index}] (private IP)")))
    if not out:
        raise InputError("is empty: give EIP=PRIVATE_IP pairs", field)
    return out
