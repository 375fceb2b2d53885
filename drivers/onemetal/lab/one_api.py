"""A stand-in for oned's XML-RPC API (oned itself cannot run here), for the few calls onemetal makes.

It answers as OpenNebula documents it: every call takes the session string
first and returns an array [success, result or error message, error code]; a
wrong session fails with AUTHENTICATION (0x0100), an unknown VM with NO_EXISTS
(0x0400). The "cloud" is a directory a test writes: host_pool.xml and
vm-<id>.xml; one.vm.update rewrites the VM's USER_TEMPLATE there (1 = merge,
0 = replace), as oned does.

Run it inside a lab namespace: python3 -m onemetal.lab.one_api PORT SESSION DATA_DIR
"""

from __future__ import annotations

import os
import re
import sys
import threading
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from lxml import etree

AUTHENTICATION = 0x0100
NO_EXISTS = 0x0400
_ATTRIBUTE = re.compile(r'^\s*([A-Za-z0-9_]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$')


class _Quiet(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


def parse_template(text: str) -> dict[str, str]:
    """KEY="VALUE" lines (the form onemetal writes), unescaped."""
    out = {}
    for line in text.splitlines():
        match = _ATTRIBUTE.match(line)
        if match:
            out[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    return out


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
        with lock:
            try:
                root = etree.parse(vm_path(vm_id)).getroot()
            except OSError:
                return [False, f"[one.vm.update] Error getting virtual machine [{vm_id}].",
                        NO_EXISTS]
            user = root.find("USER_TEMPLATE")
            if mode == 0:
                user.clear()
            for key, value in parse_template(template).items():
                elem = user.find(key)
                if elem is None:
                    elem = etree.SubElement(user, key)
                elem.text = etree.CDATA(value)
            with open(vm_path(vm_id), "wb") as f:
                f.write(etree.tostring(root))
        return [True, int(vm_id), 0]

    server.register_function(hostpool_info, "one.hostpool.info")
    server.register_function(vm_info, "one.vm.info")
    server.register_function(vm_update, "one.vm.update")
    server.serve_forever()


if __name__ == "__main__":
    serve("0.0.0.0", int(sys.argv[1]), sys.argv[2], sys.argv[3])
