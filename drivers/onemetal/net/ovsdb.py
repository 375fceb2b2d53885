"""Open vSwitch's database through ovs-vsctl: one read of the bridge, one transaction per change.

`read()` is a single ovs-vsctl call listing Bridge, Port and Interface; `transact()`
chains every command of a change with `--` into one call, which OVSDB applies as
one transaction: a tunnel or VM port is never half-built.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence

from onemetal.errors import OneMetalError
from onemetal.record import field, value
from onemetal.run import Runner

# What an action decides from: never the counters or status ovs-vswitchd keeps rewriting
# (statistics alone is a dozen numbers per interface), which only the health probe reads.
_IFACE_COLUMNS = ("_uuid", "name", "ofport", "type", "options", "external_ids", "mtu_request",
                  "bfd", "error")
_STATUS_COLUMNS = ("bfd_status",)


class OvsError(OneMetalError):
    """OVSDB returned something this module cannot read."""


def _value(raw: Any) -> Any:
    """OVSDB JSON: ["map", [[k, v]...]] -> dict, ["set", [...]] -> list (or None if empty)."""
    if isinstance(raw, list) and len(raw) == 2 and raw[0] in ("map", "set", "uuid"):
        kind, body = raw
        if kind == "map":
            return {k: _value(v) for k, v in body}
        if kind == "uuid":
            return body
        items = [_value(v) for v in body]
        return items or None
    return raw


def _rows(line: str) -> list[dict[str, Any]]:
    try:
        table = json.loads(line)
        return [dict(zip(table["headings"], (_value(v) for v in row))) for row in table["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise OvsError(f"unreadable ovs-vsctl output ({exc})", "ovsdb") from None


def _uuids(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


@value
class Interface:
    name: str
    uuid: str
    ofport: int
    type: str
    options: Mapping[str, str]
    external_ids: Mapping[str, str]
    mtu_request: int | None
    mtu: int | None
    bfd: Mapping[str, str]
    bfd_status: Mapping[str, str]
    statistics: Mapping[str, int]
    error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Interface":
        ofport = row.get("ofport")
        return cls(name=row["name"], uuid=row["_uuid"],
                   ofport=ofport if isinstance(ofport, int) else -1,
                   type=row.get("type") or "", options=row.get("options") or {},
                   external_ids=row.get("external_ids") or {},
                   mtu_request=row.get("mtu_request"), mtu=row.get("mtu"),
                   bfd=row.get("bfd") or {}, bfd_status=row.get("bfd_status") or {},
                   statistics=row.get("statistics") or {}, error=row.get("error"))


@value
class BridgeState:
    name: str
    exists: bool
    datapath_type: str = ""
    fail_mode: str = ""
    external_ids: Mapping[str, str] = field(default_factory=dict)
    interfaces: Mapping[str, Interface] = field(default_factory=dict)
    elsewhere: Mapping[str, str] = field(default_factory=dict)  # interface -> its other bridge


def _members(bridges: list[dict[str, Any]], ports: list[dict[str, Any]],
             by_uuid: Mapping[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each bridge's interface rows, by bridge name."""
    port_rows = {p["_uuid"]: p for p in ports}
    return {b["name"]: [by_uuid[u] for p in _uuids(b.get("ports")) if p in port_rows
                        for u in _uuids(port_rows[p].get("interfaces")) if u in by_uuid]
            for b in bridges}


class OvsDb:
    def __init__(self, runner: Runner, timeout: int = 10) -> None:
        self.runner = runner
        self.timeout = timeout

    def _vsctl(self, args: Sequence[str], **kwargs: Any) -> str:
        # --timeout bounds ovs-vsctl's own wait for ovsdb-server and ovs-vswitchd.
        return self.runner.run(["ovs-vsctl", f"--timeout={self.timeout}", *args],
                               **kwargs).stdout

    def read(self, bridge: str, status: bool = False) -> BridgeState:
        """One ovs-vsctl call; `status` adds the interfaces' bfd_status (the health probe)."""
        columns = _IFACE_COLUMNS + (_STATUS_COLUMNS if status else ())
        out = self._vsctl([
            "--format=json",
            "--", f"--columns={','.join(columns)}", "list", "Interface",
            "--", "--columns=_uuid,name,interfaces", "list", "Port",
            "--", "--columns=name,ports,datapath_type,fail_mode,external_ids", "list", "Bridge"])
        lines = [line for line in out.splitlines() if line.strip()]
        if len(lines) != 3:
            raise OvsError(f"expected 3 tables from ovs-vsctl, got {len(lines)}", "ovsdb")
        ifaces, ports, bridges = (_rows(line) for line in lines)
        by_uuid = {i["_uuid"]: i for i in ifaces}
        members = _members(bridges, ports, by_uuid)
        # What other bridges hold is never ours to take, whatever a NIC's TARGET says.
        elsewhere = {i["name"]: b for b, rows in members.items() if b != bridge for i in rows}
        row = next((b for b in bridges if b["name"] == bridge), None)
        if row is None:
            return BridgeState(name=bridge, exists=False, elsewhere=elsewhere)
        interfaces = {i["name"]: Interface.from_row(i) for i in members[bridge]
                      if i["name"] != bridge}
        return BridgeState(name=bridge, exists=True, datapath_type=row.get("datapath_type") or "",
                           fail_mode=row.get("fail_mode") or "",
                           external_ids=row.get("external_ids") or {}, interfaces=interfaces,
                           elsewhere=elsewhere)

    def transact(self, commands: Sequence[Sequence[str]]) -> None:
        """Every command in one ovs-vsctl call, hence one OVSDB transaction."""
        if not commands:
            return
        argv: list[str] = []
        for command in commands:
            argv += ["--", *command]
        self._vsctl(argv)
