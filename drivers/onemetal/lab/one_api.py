"""A stand-in for oned's XML-RPC API (oned itself cannot run here), for the few calls onemetal makes.

It answers as OpenNebula documents it: every call takes the session string
first and returns an array [success, result or error message, error code]; a
wrong session fails with AUTHENTICATION (0x0100). The pool is read from an XML
file, so a test changes the "cloud" by rewriting that file.

Run it inside a lab namespace: python3 -m onemetal.lab.one_api PORT SESSION POOL_XML
"""

from __future__ import annotations

import sys
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

AUTHENTICATION = 0x0100


class _Quiet(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


def serve(address: str, port: int, session: str, pool_path: str) -> None:
    server = SimpleXMLRPCServer((address, port), requestHandler=_Quiet, allow_none=False,
                                logRequests=False)

    def hostpool_info(given: str) -> list[object]:
        if given != session:
            return [False, "[one.hostpool.info] User couldn't be authenticated, aborting call.",
                    AUTHENTICATION]
        with open(pool_path, encoding="utf-8") as f:
            return [True, f.read(), 0]

    server.register_function(hostpool_info, "one.hostpool.info")
    server.serve_forever()


if __name__ == "__main__":
    serve("0.0.0.0", int(sys.argv[1]), sys.argv[2], sys.argv[3])
