"""The NAT store's schema, as forward migrations: MIGRATIONS[n] brings version n to n + 1.

A store records its version in PRAGMA user_version; Store.migrate applies what is
missing in one transaction, and refuses a file newer than this code.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = ("""
CREATE TABLE vnets (
    vnet_id  INTEGER PRIMARY KEY,
    subnet   TEXT NOT NULL UNIQUE,
    gateway  TEXT NOT NULL,
    snat_ip  TEXT NOT NULL,
    vni      INTEGER NOT NULL
);
CREATE TABLE pools (name TEXT PRIMARY KEY);
CREATE TABLE addresses (
    eip         TEXT PRIMARY KEY,
    private_ip  TEXT NOT NULL UNIQUE,
    pool        TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE
);
CREATE TABLE mappings (
    eip      TEXT PRIMARY KEY REFERENCES addresses(eip),
    vm_id    INTEGER NOT NULL,
    nic_id   INTEGER NOT NULL,
    vm_ip    TEXT NOT NULL UNIQUE,
    vnet_id  INTEGER NOT NULL REFERENCES vnets(vnet_id),
    marked   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (vm_id, nic_id)
);
CREATE TABLE unmarks (vm_id INTEGER PRIMARY KEY);
CREATE TABLE forwards (
    private_ip  TEXT NOT NULL,
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    protocol    TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),
    vm_ip       TEXT NOT NULL,
    vm_port     INTEGER NOT NULL CHECK (vm_port BETWEEN 1 AND 65535),
    PRIMARY KEY (private_ip, port, protocol)
);
""", """
CREATE TABLE generation (value INTEGER NOT NULL);
INSERT INTO generation VALUES (0);
""", """
ALTER TABLE mappings ADD COLUMN uid INTEGER;
ALTER TABLE mappings ADD COLUMN gid INTEGER;
CREATE INDEX mappings_uid ON mappings (uid);
CREATE INDEX mappings_gid ON mappings (gid);
""")
