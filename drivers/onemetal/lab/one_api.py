"""A stand-in for oned's XML-RPC API (oned itself cannot run here), for the few calls onemetal makes.

It answers as OpenNebula documents it: every call takes the session string
first and returns an array [success, result or error message, error code]; a
wrong session fails with AUTHENTICATION (0x0100), an unknown VM with NO_EXISTS
(0x0400). The "cloud" is a directory a test writes: host_pool.xml and
vm-<id>.xml (a VM that is gone: its file removed, or STATE 6, DONE).
one.vm.update(id, template, type) rewrites the VM's USER_TEMPLATE there with oned's
own semantics (type 1 merge, 0 replace; text or XML; lab/one_template.py), and
one.vmpool.info(filter, start, end, state) lists the VMs in their short form.

Run it inside a lab namespace: python3 -m onemetal.lab.one_api PORT SESSION DATA_DIR
"""

from __future__ import annotations

import os
import re
import sys
import threading
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from lxml import etree

from onemetal.lab import one_template

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.lab.one_vm import OneVm

AUTHENTICATION = 0x0100
NO_EXISTS = 0x0400
ACTION = 0x0800
RPC_API = 0x1000
INTERNAL = 0x2000
DONE = "6"
# What VirtualMachine::to_xml_short keeps (one.vmpool.info): src/vm/VirtualMachine.cc,
# VirtualMachineNic::to_xml_short, VirtualMachineTemplate::to_xml_short (a subset of the last).
SHORT_VM = ("ID", "UID", "GID", "UNAME", "GNAME", "NAME", "LAST_POLL", "STATE", "LCM_STATE",
            "RESCHED", "STIME", "ETIME", "DEPLOY_ID")
SHORT_NIC = ("IP", "EXTERNAL_IP", "IP6", "IP6_ULA", "IP6_LINK", "IP6_GLOBAL", "NETWORK_MODE",
             "SCHED_REQUIREMENTS", "SCHED_RANK", "MAC", "NETWORK", "NETWORK_ID", "NIC_ID",
             "SECURITY_GROUPS")
SHORT_USER = ("LABELS", "ERROR", "SCHED_MESSAGE")


class _Quiet(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


def _copy(parent: "etree._Element", source: "etree._Element", keys: tuple[str, ...]) -> None:
    for key in keys:
        found = source.find(key)
        if found is not None and (found.text or "") != "":
            etree.SubElement(parent, key).text = etree.CDATA(found.text)


def short_vm(vm: "etree._Element") -> "etree._Element":
    """The VM as one.vmpool.info lists it (VirtualMachine::to_xml_short)."""
    out = etree.Element("VM")
    _copy(out, vm, SHORT_VM)
    template = etree.SubElement(out, "TEMPLATE")
    for nic in vm.findall("TEMPLATE/NIC"):
        _copy(etree.SubElement(template, "NIC"), nic, SHORT_NIC)
    user = etree.SubElement(out, "USER_TEMPLATE")
    _copy(user, vm.find("USER_TEMPLATE") if vm.find("USER_TEMPLATE") is not None
          else etree.Element("USER_TEMPLATE"), SHORT_USER)
    etree.SubElement(out, "HISTORY_RECORDS")
    return out


def in_pool(vm: "etree._Element", start: int, end: int, state: int) -> bool:
    vm_id = int(vm.findtext("ID") or -1)
    wanted_state = (state == -2 or (state == -1 and vm.findtext("STATE") != DONE)
                    or (state >= 0 and vm.findtext("STATE") == str(state)))
    return wanted_state and (start == -1 or vm_id >= start) and (end == -1 or vm_id <= end)


def write_api_vm(data_dir: str, vm: "OneVm") -> str:
    """The VM as one.vm.info answers it here (both last placements): vm-<id>.xml in the
    cloud's directory; returns its path."""
    from onemetal.lab.one_vm import vm_xml

    path = os.path.join(data_dir, f"vm-{int(vm.vm_id)}.xml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(vm_xml(vm, n_history=2))
    return path


def serve(address: str, port: int, session: str, data: str) -> None:
    server = SimpleXMLRPCServer((address, port), requestHandler=_Quiet, logRequests=False)
    lock = threading.Lock()

    def denied(method: str) -> list[object]:
        return [False, f"[{method}] User couldn't be authenticated, aborting call.", AUTHENTICATION]

    def vm_path(vm_id: int) -> str:
        return os.path.join(data, f"vm-{int(vm_id)}.xml")

    def hostpool_info(given: str) -> list[object]:
        if given != session:
            return denied("one.hostpool.info")
        with open(os.path.join(data, "host_pool.xml"), encoding="utf-8") as f:
            return [True, f.read(), 0]

    def vm_info(given: str, vm_id: int, decrypt: bool = False) -> list[object]:
        if given != session:
            return denied("one.vm.info")
        try:
            with lock, open(vm_path(vm_id), encoding="utf-8") as f:
                return [True, f.read(), 0]
        except FileNotFoundError:
            return [False, f"[one.vm.info] Error getting virtual machine [{vm_id}].", NO_EXISTS]

    def vm_update(given: str, vm_id: int, template: str, mode: int) -> list[object]:
        if given != session:
            return denied("one.vm.update")
        if mode not in (0, 1):
            return [False, "[one.vm.update] Wrong update type", RPC_API]
        try:
            new = one_template.parse(template)
        except one_template.TemplateError as exc:
            return [False, f"[one.vm.update] {exc}", ACTION]
        with lock:
            try:
                root = etree.parse(vm_path(vm_id)).getroot()
            except OSError:
                return [False, f"[one.vm.update] Error getting virtual machine [{vm_id}].",
                        NO_EXISTS]
            user = root.find("USER_TEMPLATE")
            current = one_template.from_element(user) if user is not None else []
            attrs = one_template.merge(current, new) if mode == 1 else new
            updated = one_template.to_element("USER_TEMPLATE", attrs)
            if user is None:
                root.append(updated)
            else:
                root.replace(user, updated)
            with open(vm_path(vm_id), "wb") as f:
                f.write(etree.tostring(root))
        return [True, int(vm_id), 0]

    def vmpool_info(given: str, flag: int, start: int, end: int, state: int,
                    query: str = "") -> list[object]:
        if given != session:
            return denied("one.vmpool.info")
        if flag < -4:
            return [False, "[one.vmpool.info] Incorrect filter_flag", RPC_API]
        if state < -2 or state > 11:  # VirtualMachine::CLONING_FAILURE
            return [False, f"[one.vmpool.info] Incorrect state filter {state}", RPC_API]
        pool = etree.Element("VM_POOL")
        with lock:  # the session is oneadmin's: every filter flag lists every VM
            for name in sorted(os.listdir(data), key=lambda n: (len(n), n)):
                if re.fullmatch(r"vm-[0-9]+\.xml", name):
                    vm = etree.parse(os.path.join(data, name)).getroot()
                    if in_pool(vm, start, end, state):
                        pool.append(short_vm(vm))
        return [True, etree.tostring(pool, encoding="unicode"), 0]

    server.register_function(hostpool_info, "one.hostpool.info")
    server.register_function(vm_info, "one.vm.info")
    server.register_function(vm_update, "one.vm.update")
    server.register_function(vmpool_info, "one.vmpool.info")
    server.serve_forever()


if __name__ == "__main__":
    serve("0.0.0.0", int(sys.argv[1]), sys.argv[2], sys.argv[3])
