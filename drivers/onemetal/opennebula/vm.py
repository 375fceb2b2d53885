"""Typed, read-only views of a VM as oned hands it to drivers.

Views are named tuples: immutable, cheap to create, and importable without
dataclasses or typing, which would double the start-up time of every remote action.

Built for both forms oned sends: the full <VM> document and the reduced one
network drivers get, in which TEMPLATE and HISTORY_RECORDS appear several times
(one per XPath hit). Everything is collected across all occurrences.
"""

from __future__ import annotations

import re
from collections import namedtuple

from onemetal.errors import InputError
from onemetal.opennebula import values
from onemetal.opennebula.xmlview import attrs, conv, expect_root, merged_attrs, opt, req

TYPE_CHECKING = False  # typing and dataclasses cost more start-up than every action can afford
if TYPE_CHECKING:
    from typing import Mapping

    from lxml import etree

PROTOCOLS = ("ALL", "TCP", "UDP", "ICMP", "ICMPV6", "IPSEC")
RULE_TYPES = ("inbound", "outbound")
_RANGE = re.compile(r"[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*\Z")


def port_ranges(value: str, field: str) -> tuple[tuple[int, int], ...]:
    """OpenNebula's RANGE syntax, "22,80:90", as (first, last) pairs."""
    compact = value.replace(" ", "")
    if not _RANGE.match(compact):
        raise InputError(f"{value!r} is not a port range list like 22,80:90", field)
    ranges = []
    for part in compact.split(","):
        first, _, last = part.partition(":")
        lo = values.integer(first, field, 1, 65535)
        hi = values.integer(last, field, 1, 65535) if last else lo
        if hi < lo:
            raise InputError(f"range {part} ends before it starts", field)
        ranges.append((lo, hi))
    return tuple(ranges)


class SecurityGroupRule(namedtuple("SecurityGroupRule", [
        "security_group_id", "protocol", "rule_type", "ranges", "icmp_type", "ip", "size",
        "network_id"])):
    """security_group_id: int, protocol: one of PROTOCOLS, rule_type: inbound|outbound,
    ranges: ((first, last), ...) ports, icmp_type/size/network_id: int | None, ip: str | None."""

    __slots__ = ()

    @classmethod
    def from_xml(cls, elem: "etree._Element", field: str) -> "SecurityGroupRule":
        protocol = req(elem, "PROTOCOL", field).upper()
        if protocol not in PROTOCOLS:
            raise InputError(f"{protocol!r} is not one of {', '.join(PROTOCOLS)}",
                             f"{field}/PROTOCOL")
        rule_type = req(elem, "RULE_TYPE", field).lower()
        if rule_type not in RULE_TYPES:
            raise InputError(f"{rule_type!r} is not inbound or outbound", f"{field}/RULE_TYPE")
        raw_range = opt(elem, "RANGE")
        return cls(
            security_group_id=values.integer(req(elem, "SECURITY_GROUP_ID", field),
                                             f"{field}/SECURITY_GROUP_ID"),
            protocol=protocol, rule_type=rule_type,
            ranges=port_ranges(raw_range, f"{field}/RANGE") if raw_range else (),
            icmp_type=conv(elem, "ICMP_TYPE", field, lambda v, f: values.integer(v, f, 0, 255)),
            ip=conv(elem, "IP", field, values.ip),
            size=conv(elem, "SIZE", field, lambda v, f: values.integer(v, f, 1)),
            network_id=conv(elem, "NETWORK_ID", field, values.integer))


IP6_KEYS = ("IP6", "IP6_GLOBAL", "IP6_ULA", "IP6_LINK")


def _yes_no_unset(elem: "etree._Element", key: str, field: str) -> "bool | None":
    raw = opt(elem, key)
    return None if raw is None else values.yes_no(raw, f"{field}/{key}")


class Nic(namedtuple("Nic", [
        "nic_id", "mac", "bridge", "vn_mad", "network_id", "ip", "ip6", "vlan_id", "mtu",
        "guest_mtu", "target", "phydev", "security_groups", "alias", "attach", "attributes",
        "ip6s", "vrouter_ip", "parent_id", "filter_ip_spoofing", "filter_mac_spoofing"])):
    """nic_id: int; mac, bridge, vn_mad, ip, ip6, target, phydev, vrouter_ip: str | None (checked);
    network_id, vlan_id (VLAN_ID, else AUTOMATIC_VLAN_ID), mtu, guest_mtu: int | None;
    security_groups: tuple[int, ...]; alias, attach: bool; attributes: every leaf, read-only;
    ip6s: every IPv6 address of IP6_KEYS; parent_id: a NIC_ALIAS's PARENT_ID, else None;
    filter_ip_spoofing, filter_mac_spoofing: YES/NO as bool, None when not set."""

    __slots__ = ()

    @classmethod
    def from_xml(cls, elem: "etree._Element", index: int) -> "Nic":
        kind = elem.tag
        field = f"{kind}[{index}]"
        nic_id = values.integer(req(elem, "NIC_ID", field), f"{field}/NIC_ID")
        field = f"{kind}[NIC_ID={nic_id}]"
        name = values.name
        # AUTOMATIC_VLAN_ID holds the number oned picked when the vnet asked for one.
        vlan = opt(elem, "VLAN_ID") or opt(elem, "AUTOMATIC_VLAN_ID")
        vlan_field = f"{field}/{'VLAN_ID' if opt(elem, 'VLAN_ID') else 'AUTOMATIC_VLAN_ID'}"
        groups = opt(elem, "SECURITY_GROUPS")
        return cls(
            nic_id=nic_id,
            mac=conv(elem, "MAC", field, values.mac),
            bridge=conv(elem, "BRIDGE", field, lambda v, f: name(v, f, 15)),
            vn_mad=conv(elem, "VN_MAD", field, name),
            network_id=conv(elem, "NETWORK_ID", field, values.integer),
            ip=conv(elem, "IP", field, lambda v, f: values.ip(v, f, 4)),
            ip6=conv(elem, "IP6", field, lambda v, f: values.ip(v, f, 6)),
            vlan_id=values.integer(vlan, vlan_field) if vlan else None,
            mtu=conv(elem, "MTU", field, lambda v, f: values.integer(v, f, 68, 65535)),
            guest_mtu=conv(elem, "GUEST_MTU", field, lambda v, f: values.integer(v, f, 68, 65535)),
            target=conv(elem, "TARGET", field, lambda v, f: name(v, f, 15)),
            phydev=conv(elem, "PHYDEV", field, lambda v, f: name(v, f, 15)),
            security_groups=tuple(values.integer(g, f"{field}/SECURITY_GROUPS")
                                  for g in groups.split(",")) if groups else (),
            alias=kind == "NIC_ALIAS",
            attach=values.yes_no(opt(elem, "ATTACH") or "", f"{field}/ATTACH"),
            attributes=attrs(elem),
            ip6s=tuple(dict.fromkeys(
                conv(elem, key, field, lambda v, f: values.ip(v, f, 6)) for key in IP6_KEYS
                if opt(elem, key))),
            vrouter_ip=conv(elem, "VROUTER_IP", field, lambda v, f: values.ip(v, f, 4)),
            parent_id=conv(elem, "PARENT_ID", field, values.integer) if kind == "NIC_ALIAS"
            else None,
            filter_ip_spoofing=_yes_no_unset(elem, "FILTER_IP_SPOOFING", field),
            filter_mac_spoofing=_yes_no_unset(elem, "FILTER_MAC_SPOOFING", field))


class Disk(namedtuple("Disk", ["disk_id", "target", "source", "format", "datastore_id", "tm_mad",
                               "size_mb", "attributes"])):
    """disk_id: int; target, source, format, tm_mad: str | None; datastore_id, size_mb: int | None."""

    __slots__ = ()

    @classmethod
    def from_xml(cls, elem: "etree._Element", index: int) -> "Disk":
        field = f"DISK[{index}]"
        disk_id = values.integer(req(elem, "DISK_ID", field), f"{field}/DISK_ID")
        field = f"DISK[DISK_ID={disk_id}]"
        return cls(
            disk_id=disk_id,
            target=conv(elem, "TARGET", field, values.name),
            source=conv(elem, "SOURCE", field, values.text),
            format=conv(elem, "FORMAT", field, values.name),
            datastore_id=conv(elem, "DATASTORE_ID", field, values.integer),
            tm_mad=conv(elem, "TM_MAD", field, values.name),
            size_mb=conv(elem, "SIZE", field, values.integer),
            attributes=attrs(elem))


class VM(namedtuple("VM", ["id", "name", "deploy_id", "host", "host_id", "nics", "disks",
                           "security_group_rules", "context", "user_template"])):
    """id: int; name, deploy_id: str | None; host (current HOSTNAME), host_id: current placement;
    nics: tuple[Nic, ...]; disks: tuple[Disk, ...]; security_group_rules: every rule of the VM;
    context, user_template: read-only mappings."""

    __slots__ = ()

    @classmethod
    def from_xml(cls, root: "etree._Element") -> "VM":
        expect_root(root, "VM")
        vm_id = values.integer(req(root, "ID", "VM"), "VM/ID")
        # The last HISTORY is the current placement; in the network drivers' payload the
        # fields of one HISTORY are split over several HISTORY_RECORDS, so read each field alone.
        hostnames = [e.text.strip() for e in root.findall("HISTORY_RECORDS/HISTORY/HOSTNAME")
                     if e.text and e.text.strip()]
        hids = [e.text.strip() for e in root.findall("HISTORY_RECORDS/HISTORY/HID")
                if e.text and e.text.strip()]
        nic_elems = root.findall("TEMPLATE/NIC") + root.findall("TEMPLATE/NIC_ALIAS")
        return cls(
            id=vm_id,
            name=conv(root, "NAME", "VM", values.text),
            deploy_id=conv(root, "DEPLOY_ID", "VM", values.name),
            host=values.name(hostnames[-1], "VM/HISTORY_RECORDS/HISTORY/HOSTNAME")
            if hostnames else None,
            host_id=values.integer(hids[-1], "VM/HISTORY_RECORDS/HISTORY/HID") if hids else None,
            nics=tuple(Nic.from_xml(e, i) for i, e in enumerate(nic_elems)),
            disks=tuple(Disk.from_xml(e, i) for i, e in enumerate(root.findall("TEMPLATE/DISK"))),
            security_group_rules=tuple(
                SecurityGroupRule.from_xml(e, f"SECURITY_GROUP_RULE[{i}]")
                for i, e in enumerate(root.findall("TEMPLATE/SECURITY_GROUP_RULE"))),
            context=merged_attrs(root.findall("TEMPLATE/CONTEXT")),
            user_template=merged_attrs(root.findall("USER_TEMPLATE")))

    def nics_for(self, vn_mad: str) -> tuple[Nic, ...]:
        """The NICs a network driver owns (oned runs each driver for its own NICs only)."""
        return tuple(n for n in self.nics if n.vn_mad == vn_mad)

    def aliases_of(self, nic: Nic) -> tuple[Nic, ...]:
        """The NIC_ALIASes riding on `nic` (their addresses use its port). oned leases an alias
        from its own NETWORK, unchecked against the parent's: one from another vnet (another
        VNI) would hand this port an address of someone else's, so it does not count."""
        return tuple(n for n in self.nics if n.alias and n.parent_id == nic.nic_id
                     and n.network_id is not None and n.network_id == nic.network_id
                     and n.vlan_id == nic.vlan_id)

    def rules_for(self, nic: Nic) -> tuple[SecurityGroupRule, ...]:
        return tuple(r for r in self.security_group_rules
                     if r.security_group_id in nic.security_groups)
