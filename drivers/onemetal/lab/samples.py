"""OpenNebula documents shaped as oned sends them, for the lab, the demo, tests and benchmarks."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Mapping, Sequence
from xml.sax.saxutils import escape

VN_MAD = "ovswitch_vxlan_unicast"


@dataclass(frozen=True)
class SampleNic:
    nic_id: int
    ip: str
    mac: str
    bridge: str = "br-mesh"
    vlan_id: int | None = 100
    security_groups: str = "0"
    mtu: int | None = 1450
    extra: tuple[tuple[str, str], ...] = ()


def _elems(values: dict[str, object]) -> str:
    return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in values.items())


def nic_fields(nic: SampleNic, vm_id: int = 42) -> dict[str, str]:
    """The NIC's attributes as oned sets them (the vnet's inherited ones, the lease, `extra`)."""
    fields: dict[str, object] = {
        "AR_ID": 0, "BRIDGE": nic.bridge, "BRIDGE_TYPE": "openvswitch", "IP": nic.ip,
        "MAC": nic.mac, "MTU": nic.mtu, "NAME": f"NIC{nic.nic_id}", "NETWORK": "private",
        "NETWORK_ID": 0, "NIC_ID": nic.nic_id, "SECURITY_GROUPS": nic.security_groups,
        "TARGET": f"one-{vm_id}-{nic.nic_id}", "VLAN_ID": nic.vlan_id, "VN_MAD": VN_MAD,
        **dict(nic.extra)}
    return {k: str(v) for k, v in fields.items() if v not in (None, "")}


def nic_xml(nic: SampleNic, tag: str = "NIC", vm_id: int = 42) -> str:
    return f"<{tag}>" + _elems(nic_fields(nic, vm_id)) + f"</{tag}>"


_RULE = re.compile(r"<SECURITY_GROUP_RULE>.*?</SECURITY_GROUP_RULE>", re.S)


def vnm_vm_xml(vm_id: int, host: str, nics: Sequence[SampleNic], *, extra_context: int = 0,
               rules: str = "", aliases: Sequence[SampleNic] = (),
               context: Mapping[str, str] | None = None,
               user_template: Sequence[tuple[str, str]] = (("EIP", "yes"),),
               hid: int = 0, ds_id: int = 0, deploy_id: str = "",
               vm_mad: str = "onemetal") -> str:
    """The network drivers' VM document as get_vnm_drivers builds it: a TEMPLATE or
    HISTORY_RECORDS of its own per XPath hit, none for a missing element (`context`: the
    CONTEXT section, by default NETWORK and a key; an empty one is no CONTEXT); each
    SECURITY_GROUP_RULE of `rules` in a TEMPLATE of its own, none when there is none."""
    context = {**(context if context is not None else
                  {"NETWORK": "YES", "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3Nza lab"}),
               **{f"VAR_{i}": "x" * 40 for i in range(extra_context)}}
    deploy = f"<DEPLOY_ID>{escape(deploy_id)}</DEPLOY_ID>" if deploy_id else "<DEPLOY_ID/>"
    history = "".join(f"<HISTORY_RECORDS><HISTORY><{k}>{escape(str(v))}</{k}></HISTORY>"
                      "</HISTORY_RECORDS>"
                      for k, v in (("HOSTNAME", host), ("HID", hid), ("DS_ID", ds_id),
                                   ("VM_MAD", vm_mad)))
    return (f"<VM><ID>{vm_id}</ID>{deploy}"
            + (f"<TEMPLATE><CONTEXT>{_elems(context)}</CONTEXT></TEMPLATE>" if context else "")
            + f"<USER_TEMPLATE>{_elems(dict(user_template))}</USER_TEMPLATE>"
            + "".join(f"<TEMPLATE>{rule}</TEMPLATE>" for rule in _RULE.findall(rules))
            + history
            + "".join(f"<TEMPLATE>{nic_xml(n, vm_id=vm_id)}</TEMPLATE>" for n in nics)
            # an alias's parent goes in its `extra` as PARENT_ID, as oned writes it
            + "".join(f"<TEMPLATE>{nic_xml(a, 'NIC_ALIAS', vm_id)}</TEMPLATE>" for a in aliases)
            + "</VM>")


def big_vm_xml(target_bytes: int = 50_000) -> str:
    """A VM document of about `target_bytes`, as a busy VM's payload is."""
    nics = [SampleNic(i, f"192.168.{i // 200}.{i % 200 + 2}", f"02:00:c0:a8:{i // 200:02x}:{i % 200 + 2:02x}")
            for i in range(16)]
    text = vnm_vm_xml(42, "one-1", nics)
    extra = max(0, (target_bytes - len(text)) // 60)
    return vnm_vm_xml(42, "one-1", nics, extra_context=extra)


def sg_rule_xml(group: int, protocol: str, rule_type: str, **extra: object) -> str:
    """One SECURITY_GROUP_RULE as oned puts it in the VM template."""
    return "<SECURITY_GROUP_RULE>" + _elems({
        "SECURITY_GROUP_ID": group, "SECURITY_GROUP_NAME": f"sg{group}", "PROTOCOL": protocol,
        "RULE_TYPE": rule_type, **{k.upper(): v for k, v in extra.items()}}) + "</SECURITY_GROUP_RULE>"


def host_pool_xml(hosts: Sequence[tuple[int, str, str]]) -> str:
    """HOST_POOL of (id, name, tunnel_ip)."""
    body = "".join(
        f"<HOST><ID>{hid}</ID><NAME>{escape(name)}</NAME><STATE>2</STATE><IM_MAD>kvm</IM_MAD>"
        f"<VM_MAD>onemetal</VM_MAD><CLUSTER_ID>0</CLUSTER_ID>"
        f"<TEMPLATE><TUNNEL_IP>{escape(ip)}</TUNNEL_IP><HYPERVISOR>kvm</HYPERVISOR></TEMPLATE></HOST>"
        for hid, name, ip in hosts)
    return f"<HOST_POOL>{body}</HOST_POOL>"


def b64(text: str) -> str:
    """Base64 as oned's Ruby MADs make it (strict_encode64: one line)."""
    return base64.b64encode(text.encode()).decode("ascii")
