"""The deployment file oned writes (src/vmm/LibVirtDriverKVM.cc), checked and rewritten with lxml.

oned writes it, but tenants write many of its values (graphics LISTEN, NIC
models, names), so it is parsed as untrusted: bounded in size, no DTD, no
entities, no network. Two rewrites, before libvirt sees it:
- every interface whose tap is one of the VM's ports (onemetal.net.vnm.port_specs)
  gets `<mtu size>` = the MTU the network driver enforces, so guest, tap and OVS
  port agree and no guest sends frames the VXLAN underlay silently drops;
- every VNC/SPICE console listens on [vmm] graphics_listen only (127.0.0.1 unless
  set to another loopback or management address): a console on 0.0.0.0 is open
  to whoever reaches the host. Policy "rewrite" moves it there; "refuse" fails
  the deploy when the file asked for another address.
"""

from __future__ import annotations

import ipaddress
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

from lxml import etree

from onemetal.errors import ConfigError, InputError
from onemetal.vmm.deploy_ids import NAME

MAX_BYTES = 1 << 20  # LibVirtDriverKVM's files are a few kB; even 256 disks stay far below
NETWORK_CONSOLES = ("vnc", "spice", "rdp")
POLICIES = ("rewrite", "refuse")
FIELD = "deployment file"


def console_address(raw: str, field: str = "vmm.graphics_listen") -> str:
    """The configured console address: an IP that is not unspecified (0.0.0.0, ::) or multicast."""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(f"{raw!r} is not an IP address", field) from None
    if address.is_unspecified or address.is_multicast:
        raise ConfigError(f"{raw} would open the consoles to every network; use a loopback or "
                          f"a management address", field)
    return str(address)


def parse(text: str) -> etree._Element:
    """The <domain> element, or InputError: too large, not XML, a DTD or entity, no name."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise InputError(f"larger than {MAX_BYTES} bytes", FIELD)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_pis=True)
    try:
        root = etree.fromstring(text.encode("utf-8", "surrogatepass"), parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"not well-formed XML ({exc})", FIELD) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InputError("holds a DOCTYPE; a deployment file has none", FIELD)
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise InputError("holds an entity reference", FIELD)
    if root.tag != "domain":
        raise InputError(f"the root element is <{root.tag}>, not <domain>", FIELD)
    domain_name(root)
    return root


def domain_name(root: etree._Element, vmid: str | None = None) -> str:
    """OpenNebula's name for the domain, one-<VMID>: the monitoring probes find VMs by it."""
    name = (root.findtext("name") or "").strip()
    if not name:
        raise InputError("missing: the domain needs a <name>", f"{FIELD}: domain/name")
    if not NAME.fullmatch(name) or (vmid is not None and name != f"one-{vmid}"):
        want = f"one-{vmid}" if vmid is not None else "one-<VMID>"
        raise InputError(f"{name!r} is not OpenNebula's name {want}", f"{FIELD}: domain/name")
    return name


def set_mtus(root: etree._Element, mtus: Mapping[str, int]) -> list[str]:
    """<mtu size> on each interface whose <target dev> is one of the VM's ports; the taps set."""
    done = []
    for iface in root.iterfind("devices/interface"):
        target = iface.find("target")
        dev = target.get("dev") if target is not None else None
        if dev not in mtus:
            continue
        for old in iface.findall("mtu"):
            iface.remove(old)
        etree.SubElement(iface, "mtu", size=str(mtus[dev]))
        done.append(dev)
    return done


def _listens(graphics: etree._Element) -> list[str]:
    """Every address the console was asked to listen on ("" for a listen without one)."""
    found = [graphics.get("listen")] if graphics.get("listen") is not None else []
    for listen in graphics.iterfind("listen"):
        kind = listen.get("type", "address")
        if kind in ("address", "network"):
            found.append(listen.get("address", "") if kind == "address" else
                         f"network {listen.get('network', '')}")
    return [a or "" for a in found]


def confine_consoles(root: etree._Element, address: str, policy: str) -> list[str]:
    """Every network console on `address` only; the addresses replaced. InputError under
    "refuse" when the file asked for another one (a console without any is moved silently)."""
    if policy not in POLICIES:
        raise ConfigError(f"{policy!r} is not one of {', '.join(POLICIES)}", "vmm.graphics_policy")
    replaced = []
    for i, graphics in enumerate(root.iterfind("devices/graphics")):
        kind = graphics.get("type", "")
        if kind not in NETWORK_CONSOLES:
            continue
        if any(listen.get("type") == "socket" for listen in graphics.iterfind("listen")):
            continue  # a unix socket: no network at all
        asked = [a for a in _listens(graphics) if a != address]
        if asked and policy == "refuse":
            raise InputError(f"listens on {', '.join(repr(a) for a in asked)}; this host allows "
                             f"only {address} (vmm.graphics_policy = refuse)",
                             f"{FIELD}: devices/graphics[{i}] ({kind})")
        replaced.extend(asked)
        for listen in graphics.findall("listen"):
            graphics.remove(listen)
        graphics.set("listen", address)
        etree.SubElement(graphics, "listen", type="address", address=address)
    return replaced


def rewrite(text: str, mtus: Mapping[str, int], address: str, policy: str,
            vmid: str | None = None, host_paths: tuple[str, str] | None = None) -> tuple[str, str]:
    """(domain name, the XML libvirt gets): every check done before anything is changed.
    host_paths (datastores_dir, VM directory): a file oned wrote from what tenants set, checked
    against onemetal.vmm.domain_policy; libvirt's own XML (save images, live XML) is not."""
    root = parse(text)
    name = domain_name(root, vmid)
    if host_paths is not None:
        from onemetal.vmm import domain_policy

        domain_policy.check(root, *host_paths)
    set_mtus(root, mtus)
    confine_consoles(root, console_address(address), policy)
    return name, etree.tostring(root, encoding="unicode")
