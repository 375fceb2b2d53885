"""The NAT store: SQLite on the frontend, the one source of truth onenat renders the gateway from.

WAL (readers never wait for the writer), every change inside BEGIN IMMEDIATE (the
write lock is taken before anything is read, so two `onenat map` of one EIP cannot
both see it free), and the schema version in PRAGMA user_version with forward
migrations applied in one transaction. Uniqueness (one EIP per mapping, one
mapping per VM NIC) is enforced by the schema itself, whatever the concurrency;
the EIP quotas are counted inside the map's own transaction, so concurrent hooks
cannot exceed them either. Every transaction that changes a row also increments
the generation, so the gateway can tell a newer push from an older one.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import Iterator, Sequence

from onemetal.errors import InputError, OneMetalError
from onemetal.nat.model import Address, Forward, Mapping, NatState, Owner, Quota, Vnet
from onemetal.nat.schema import MIGRATIONS
from onemetal.ownership import SERVICE_USER, private_dir, private_file

__all__ = ["MIGRATIONS", "Store", "StoreError"]


class StoreError(OneMetalError):
    """The store file cannot be used (newer schema, unreadable, locked too long)."""


class Store:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        # The hooks run as oneadmin, an operator maybe as root: the store stays oneadmin's.
        private_dir(os.path.dirname(os.path.abspath(path)), "nat.store")
        private_file(path, "nat.store")
        try:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), not sqlite3's.
            self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the NAT store ({exc}): it must be a SQLite file that "
                             f"{SERVICE_USER} can read and write (mode 0600, owner {SERVICE_USER})",
                             path) from None

    def close(self) -> None:
        self.db.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        with self.transaction():
            current = self.version
            if current > len(MIGRATIONS):
                raise StoreError(f"schema version {current} is newer than this onemetal "
                                 f"({len(MIGRATIONS)}): upgrade onemetal", self.path)
            for version in range(current, len(MIGRATIONS)):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            if current != len(MIGRATIONS):
                self.db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error: a change is whole or absent."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the NAT store stayed locked ({exc})", self.path) from None
        changes = self.db.total_changes
        try:
            yield self.db
            # Every migration ends with the generation table, so it exists by now.
            if self.db.total_changes != changes:
                self.db.execute("UPDATE generation SET value = value + 1")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def generation(self) -> int:
        return int(self.db.execute("SELECT value FROM generation").fetchone()[0])

    # -- vnets -----------------------------------------------------------------------------
    def add_vnet(self, vnet: Vnet) -> None:
        with self.transaction() as db:
            clash = db.execute("SELECT vnet_id FROM vnets WHERE vnet_id = ? OR subnet = ?",
                               (vnet.vnet_id, vnet.subnet)).fetchone()
            if clash:
                raise InputError(f"vnet {clash[0]} is already NATed (or holds {vnet.subnet})", "vnet")
            db.execute("INSERT INTO vnets VALUES (?, ?, ?, ?, ?)",
                       (vnet.vnet_id, vnet.subnet, vnet.gateway, vnet.snat_ip, vnet.vni))

    def delete_vnet(self, vnet_id: int) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM mappings WHERE vnet_id = ?", (vnet_id,)).fetchone():
                raise InputError(f"vnet {vnet_id} still has mapped VMs: unmap them first", "vnet")
            if not db.execute("DELETE FROM vnets WHERE vnet_id = ?", (vnet_id,)).rowcount:
                raise InputError(f"vnet {vnet_id} is not NATed", "vnet")

    # -- pools -----------------------------------------------------------------------------
    def create_pool(self, name: str, pairs: Sequence[tuple[str, str]]) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM pools WHERE name = ?", (name,)).fetchone():
                raise InputError(f"pool {name!r} exists", "name")
            db.execute("INSERT INTO pools VALUES (?)", (name,))
            for eip, private in pairs:
                taken = db.execute("SELECT pool FROM addresses WHERE eip = ? OR private_ip IN (?, ?)"
                                   " OR eip = ?", (eip, private, eip, private)).fetchone()
                if taken:
                    raise InputError(f"{eip} or {private} is already in pool {taken[0]!r}",
                                     "addresses")
                db.execute("INSERT INTO addresses VALUES (?, ?, ?)", (eip, private, name))

    def delete_pool(self, name: str) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM mappings JOIN addresses USING (eip) WHERE pool = ?",
                          (name,)).fetchone():
                raise InputError(f"pool {name!r} has mapped addresses: unmap them first", "name")
            if not db.execute("DELETE FROM pools WHERE name = ?", (name,)).rowcount:
                raise InputError(f"no pool {name!r}", "name")

    # -- mappings --------------------------------------------------------------------------
    def map(self, vm_id: int, nic_id: int, vm_ip: str, vnet_id: int, eip: str | None = None,
            pool: str | None = None, owner: Owner | None = None,
            quota: Quota | None = None, pools: Sequence[str] | None = None,
            field: str = "eip") -> Mapping:
        """Map an EIP (the given one, else the first free one of `pool` or of any pool), recording
        the VM's owner; with a quota, only while the owner's user and group are below it; with
        `pools`, only an address of one of them. `field` names where the EIP was asked for."""
        within = (pool,) if pool else tuple(pools) if pools is not None else None
        with self.transaction() as db:
            if quota is not None:
                if owner is None:
                    raise InputError("a quota needs the VM's owner", f"VM[ID={vm_id}]/UID")
                self._check_quota(db, vm_id, owner, quota)
            vnet = db.execute("SELECT subnet FROM vnets WHERE vnet_id = ?", (vnet_id,)).fetchone()
            if vnet is None:
                raise InputError(f"vnet {vnet_id} is not NATed (onenat vnet add)", "nic")
            current = db.execute("SELECT eip FROM mappings WHERE vm_id = ? AND nic_id = ?",
                                 (vm_id, nic_id)).fetchone()
            if current:
                raise InputError(f"VM {vm_id} NIC {nic_id} already has EIP {current[0]}", "vm")
            if eip is not None:
                row = db.execute("SELECT eip, private_ip, pool FROM addresses WHERE eip = ?",
                                 (eip,)).fetchone()
                if row is None:
                    raise InputError(f"{eip} is in no pool", field)
                if within is not None and row[2] not in within:
                    raise InputError(f"{eip} is not in pool {_either(within)}", field)
                holder = db.execute("SELECT vm_id, nic_id FROM mappings WHERE eip = ?",
                                    (eip,)).fetchone()
                if holder:
                    raise InputError(f"{eip} is already mapped to VM {holder[0]} NIC {holder[1]}",
                                     field)
            else:
                marks = ", ".join("?" * len(within or ()))
                row = db.execute(
                    "SELECT eip, private_ip FROM addresses WHERE eip NOT IN (SELECT eip FROM mappings)"
                    + (f" AND pool IN ({marks})" if within is not None else "")
                    + " ORDER BY private_ip", within or ()).fetchone()
                if row is None:
                    raise InputError("no free Elastic IP" + (
                        f" in pool {_either(within)}" if within is not None else ""),
                        "pool" if pool else field)
            try:
                db.execute("INSERT INTO mappings (eip, vm_id, nic_id, vm_ip, vnet_id, uid, gid) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (row[0], vm_id, nic_id, vm_ip, vnet_id,
                            owner.uid if owner else None, owner.gid if owner else None))
                db.execute("DELETE FROM unmarks WHERE vm_id = ?", (vm_id,))
            except sqlite3.IntegrityError as exc:
                raise InputError(f"{vm_ip} already has an EIP ({exc})", "vm") from None
            return Mapping(row[0], row[1], vm_id, nic_id, vm_ip, vnet_id)

    @staticmethod
    def _check_quota(db: sqlite3.Connection, vm_id: int, owner: Owner, quota: Quota) -> None:
        for column, who, limit, key in (("uid", owner.uid, quota.user, "eip_quota_user"),
                                        ("gid", owner.gid, quota.group, "eip_quota_group")):
            if limit == Quota.UNLIMITED:
                continue
            held = db.execute(f"SELECT COUNT(*) FROM mappings WHERE {column} = ?",
                              (who,)).fetchone()[0]
            if held >= limit:
                kind = "user" if column == "uid" else "group"
                raise InputError(f"{kind} {who} already holds {held} Elastic IP(s), its quota "
                                 f"(nat.{key} = {limit})", f"VM[ID={vm_id}]/USER_TEMPLATE/EIP")

    def unmap(self, *, eip: str | None = None, vm_id: int | None = None,
              nic_id: int | None = None) -> list[Mapping]:
        """Remove the mapping of `eip`, or those of a VM (one NIC, or all); returns them."""
        with self.transaction() as db:
            found = [m for m in self._mappings(db) if (eip is not None and m.eip == eip) or (
                eip is None and m.vm_id == vm_id and nic_id in (None, m.nic_id))]
            return self._remove(db, found)

    def release(self, seen: Sequence[Mapping]) -> list[Mapping]:
        """Remove these mappings, each only if it is still exactly as it was seen (a reconcile
        works from a snapshot: a mapping made or changed since then is not its to judge)."""
        with self.transaction() as db:
            current = set(self._mappings(db))
            return self._remove(db, [m for m in seen if m in current])

    @staticmethod
    def _remove(db: sqlite3.Connection, found: list[Mapping]) -> list[Mapping]:
        """Delete the mappings; a VM left with none gets its USER_TEMPLATE mark removed later."""
        for m in found:
            db.execute("DELETE FROM mappings WHERE eip = ?", (m.eip,))
        for vm in {m.vm_id for m in found}:
            if not db.execute("SELECT 1 FROM mappings WHERE vm_id = ?", (vm,)).fetchone():
                db.execute("INSERT OR IGNORE INTO unmarks VALUES (?)", (vm,))
        return found

    # -- the marks on VMs (USER_TEMPLATE), retried by `onenat sync` until they succeed ------------
    def unmarked(self) -> list[Mapping]:
        """Mappings whose VM does not show its EIP yet."""
        return [m for m in self._mappings(self.db, "WHERE m.marked = 0")]

    def set_marked(self, eip: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE mappings SET marked = 1 WHERE eip = ?", (eip,))

    def pending_unmarks(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT vm_id FROM unmarks ORDER BY vm_id")]

    def unmark_done(self, vm_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM unmarks WHERE vm_id = ?", (vm_id,))

    # -- forwards --------------------------------------------------------------------------
    def add_forward(self, forward: Forward) -> None:
        with self.transaction() as db:
            known = {r[0] for r in db.execute("SELECT private_ip FROM addresses UNION "
                                              "SELECT snat_ip FROM vnets")}
            if forward.private_ip not in known:
                raise InputError(f"{forward.private_ip} is neither a pool's private address nor "
                                 "a vnet's SNAT address", "address")
            try:
                db.execute("INSERT INTO forwards VALUES (?, ?, ?, ?, ?)",
                           (forward.private_ip, forward.port, forward.protocol, forward.vm_ip,
                            forward.vm_port))
            except sqlite3.IntegrityError:
                raise InputError(f"{forward.private_ip}:{forward.port}/{forward.protocol} is "
                                 "already forwarded", "port") from None

    def delete_forward(self, private_ip: str, port: int, protocol: str) -> Forward:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM forwards WHERE private_ip = ? AND port = ? AND "
                             "protocol = ?", (private_ip, port, protocol)).fetchone()
            if row is None:
                raise InputError(f"no forward {private_ip}:{port}/{protocol}", "port")
            db.execute("DELETE FROM forwards WHERE private_ip = ? AND port = ? AND protocol = ?",
                       (private_ip, port, protocol))
            return Forward(*row)

    # -- reading ---------------------------------------------------------------------------
    @staticmethod
    def _mappings(db: sqlite3.Connection, where: str = "") -> list[Mapping]:
        return [Mapping(*r) for r in db.execute(
            "SELECT m.eip, a.private_ip, m.vm_id, m.nic_id, m.vm_ip, m.vnet_id "
            f"FROM mappings m JOIN addresses a USING (eip) {where} ORDER BY a.private_ip")]

    def state(self) -> NatState:
        """One consistent snapshot (a read transaction) of everything."""
        db = self.db
        db.execute("BEGIN")
        try:
            return NatState(
                vnets=tuple(Vnet(*r) for r in db.execute("SELECT * FROM vnets ORDER BY vnet_id")),
                addresses=tuple(Address(*r) for r in db.execute(
                    "SELECT eip, private_ip, pool FROM addresses ORDER BY pool, private_ip")),
                mappings=tuple(self._mappings(db)),
                forwards=tuple(Forward(*r) for r in db.execute(
                    "SELECT * FROM forwards ORDER BY private_ip, port, protocol")),
                generation=self.generation)
        finally:
            db.execute("COMMIT")


def _either(pools: Sequence[str]) -> str:
    return " or ".join(map(repr, pools))
