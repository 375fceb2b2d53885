"""What the hot-plug, resize and snapshot actions share: oned's action XML, the running domain,
its live XML, and attach/detach of one device with a bounded wait for the guest.

oned sends every one of these actions the decoded <VMM_DRIVER_ACTION_DATA> on stdin
(one_vmm_exec.rb); the VM in it is what the tenant wrote, so each value taken from it
is checked before libvirt is asked anything.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TextIO

    from onemetal.opennebula.xmltree import Element

    Live = Any  # an element of libvirt's live XML, as onemetal.vmm.domain_xml parses it

import libvirt

from onemetal import config
from onemetal.errors import InputError
from onemetal.opennebula import payload
from onemetal.vmm.connection import Connection, VmmError
from onemetal.vmm.deploy import connection
from onemetal.vmm.lifecycle import existing

ROOT = "VMM_DRIVER_ACTION_DATA"
# A guest acknowledges a PCI unplug when its OS gets to it; libvirt itself waits 5 s first.
DETACH_WAIT = 5.0
LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


def action_data(stdin: TextIO) -> Element:
    """The <VMM_DRIVER_ACTION_DATA> oned sends (plain, or base64 as in the argv copy)."""
    return payload.read_payload(stdin.read(), "stdin", root=ROOT)


def vm_of(data: Element) -> Element:
    vm = data.find("VM")
    if vm is None:
        raise InputError("missing: oned sends the VM in the action data", f"{ROOT}/VM")
    return vm


def attached(vm: Element, kind: str) -> Element:
    """The VM/TEMPLATE/<kind> with ATTACH=YES: the one being hot-plugged."""
    found = [e for e in vm.findall(f"TEMPLATE/{kind}")
             if (e.findtext("ATTACH") or "").strip().upper() == "YES"]
    if len(found) != 1:
        raise InputError(f"{len(found)} elements with ATTACH=YES; oned marks exactly one",
                         f"VM/TEMPLATE/{kind}")
    return found[0]


class Domain:
    """The running domain of an action, on one bounded connection."""

    def __init__(self, deploy: str, cfg: config.Config | None = None) -> None:
        self.cfg = cfg or config.load()
        self.conn: Connection = connection(self.cfg)
        self.name = deploy
        try:
            self.dom: Any = existing(self.conn, deploy)
        except BaseException:
            self.conn.close()
            raise

    def __enter__(self) -> Domain:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.close()

    def run(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(domain, *args) as one bounded libvirt call."""
        return self.conn.run(what, self.name, lambda _c: fn(self.dom, *args))

    def live(self) -> Live:
        """The live domain XML (libvirt's own, parsed as strictly as a deployment file)."""
        from onemetal.vmm import domain_xml  # lxml: not for the actions that never read it

        return domain_xml.parse(self.run("read the domain XML", lambda d: d.XMLDesc(0)))

    def attach(self, xml: str) -> None:
        self.run("attach device", lambda d: d.attachDeviceFlags(xml, LIVE))

    def detach(self, xml: str, gone: Callable[[Live], bool]) -> None:
        """Detach, then wait (bounded) until the live XML no longer holds the device."""
        self.run("detach device", lambda d: d.detachDeviceFlags(xml, LIVE))
        deadline = time.monotonic() + DETACH_WAIT
        while not gone(self.live()):
            if time.monotonic() > deadline:
                raise VmmError(f"detach device: the guest did not release it within "
                               f"{DETACH_WAIT:g} s", self.name)
            time.sleep(0.2)


def xml_text(element: ET.Element) -> str:
    """A device element built here, as libvirt gets it (ElementTree escapes every value)."""
    return ET.tostring(element, encoding="unicode")


def device_text(live: Live) -> str:
    """A device of the live XML, copied whole (as virsh detach-disk sends it back)."""
    def copy(source: Live) -> ET.Element:
        elem = ET.Element(source.tag, dict(source.attrib))
        elem.text = source.text
        for child in source:
            if isinstance(child.tag, str):  # comments and processing instructions stay behind
                elem.append(copy(child))
                elem[-1].tail = child.tail
        return elem
    return xml_text(copy(live))
