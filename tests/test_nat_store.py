"""The NAT store (SQLite): schema, generation, quotas, releases; and the rendering of the gateway's
nft table."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid

import pytest

from onemetal.errors import InputError
from onemetal.lab import netns
from onemetal.nat import model
from onemetal.nat.model import Forward, NatState, Owner, Quota, Vnet
from onemetal.nat.render import compare, desired, read_back, render
from onemetal.nat.store import MIGRATIONS, Store, StoreError

VNET = Vnet.checked(0, "192.168.0.0/24", "192.168.0.1", "10.0.0.41", 100)
PAIRS = [(f"3.3.3.{i}", f"10.0.0.4{i}") for i in range(2, 6)]


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "nat.db"))
    s.add_vnet(VNET)
    s.create_pool("aws", PAIRS)
    yield s
    s.close()


def test_schema_is_versioned_and_a_newer_file_is_refused(tmp_path):
    path = str(tmp_path / "nat.db")
    assert Store(path).version == len(MIGRATIONS)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this onemetal"):
        Store(path)


def test_store_uses_wal(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_map_takes_the_first_free_eip_and_one_nic_gets_one(store):
    first = store.map(5, 0, "192.168.0.5", 0)
    assert (first.eip, first.private_ip) == ("3.3.3.2", "10.0.0.42")
    assert store.map(6, 0, "192.168.0.6", 0, eip="3.3.3.4").private_ip == "10.0.0.44"
    with pytest.raises(InputError, match="vm: VM 5 NIC 0 already has EIP 3.3.3.2"):
        store.map(5, 0, "192.168.0.5", 0)
    with pytest.raises(InputError, match="eip: 3.3.3.4 is already mapped to VM 6 NIC 0"):
        store.map(7, 0, "192.168.0.7", 0, eip="3.3.3.4")
    with pytest.raises(InputError, match="eip: 3.3.3.99 is in no pool"):
        store.map(7, 0, "192.168.0.7", 0, eip="3.3.3.99")
    with pytest.raises(InputError, match="nic: vnet 3 is not NATed"):
        store.map(7, 0, "192.168.1.7", 3)


def test_a_failed_change_leaves_nothing_behind(store):
    before = store.state()
    with pytest.raises(InputError):
        store.create_pool("more", [("3.3.3.9", "10.0.0.49"), ("3.3.3.2", "10.0.0.50")])
    assert store.state() == before  # the first pair of the refused pool was rolled back


def test_map_within_pools_takes_and_accepts_only_their_addresses_naming_the_field(store):
    store.create_pool("more", [("3.3.4.2", "10.0.1.2"), ("3.3.4.3", "10.0.1.3")])
    asked = "VM[ID=7]/USER_TEMPLATE/EIP"
    with pytest.raises(InputError, match=r"^VM\[ID=7\]/USER_TEMPLATE/EIP: 3.3.3.2 is not in pool "
                                         r"'more' or 'none'$"):
        store.map(7, 0, "192.168.0.7", 0, eip="3.3.3.2", pools=("more", "none"), field=asked)
    assert store.state().mappings == ()
    assert store.map(7, 0, "192.168.0.7", 0, pools=("more",), field=asked).eip == "3.3.4.2"
    assert store.map(8, 0, "192.168.0.8", 0, eip="3.3.4.3", pools=("more",)).eip == "3.3.4.3"
    with pytest.raises(InputError, match=r"^VM\[ID=9\]/USER_TEMPLATE/EIP: no free Elastic IP in "
                                         r"pool 'more'$"):
        store.map(9, 0, "192.168.0.9", 0, pools=("more",), field="VM[ID=9]/USER_TEMPLATE/EIP")
    assert store.map(9, 0, "192.168.0.9", 0).eip == "3.3.3.2"  # unrestricted: any pool


MAP_ONE = """
import sys
sys.path.insert(0, {drivers!r})
from onemetal.errors import InputError
from onemetal.nat.store import Store
store = Store({path!r})
try:
    store.map(int(sys.argv[1]), 0, "192.168.0." + sys.argv[1], 0, eip="3.3.3.2")
    print("mapped")
except InputError as exc:
    print("refused", exc)
"""


def test_ten_concurrent_maps_of_one_eip_give_exactly_one_mapping(store, tmp_path):
    from conftest import REPO
    code = MAP_ONE.format(drivers=f"{REPO}/drivers", path=store.path)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(10 + i)], stdout=subprocess.PIPE,
                              text=True) for i in range(10)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sum(o == "mapped" for o in outs) == 1, outs
    assert all(o.startswith("refused eip: 3.3.3.2 is already mapped to VM") for o in outs
               if o != "mapped")
    assert len(store.state().mappings) == 1


@pytest.mark.parametrize("call,field", [
    (lambda: model.ipv4("10.0.0.300", "address"), "address"),
    (lambda: model.ipv4("10.1", "address"), "address"),
    (lambda: model.subnet("192.168.0.1/24", "subnet"), "subnet"),
    (lambda: Vnet.checked(0, "192.168.0.0/24", "192.168.1.1", "10.0.0.41", 100), "gateway"),
    (lambda: Forward.checked("10.0.0.41", 0, "tcp", "192.168.0.5", 80), "port"),
    (lambda: Forward.checked("10.0.0.41", 70000, "tcp", "192.168.0.5", 80), "port"),
    (lambda: Forward.checked("10.0.0.41", 80, "sctp", "192.168.0.5", 80), "protocol"),
    (lambda: model.pairs("3.3.3.2", "addresses"), "addresses[0]"),
])
def test_bad_values_name_their_field(call, field):
    with pytest.raises(InputError, match=f"^{field.replace('[', '.').replace(']', '.')}"):
        call()


def test_forward_must_use_a_gateway_address(store):
    with pytest.raises(InputError, match="address: 10.0.0.99 is neither"):
        store.add_forward(Forward.checked("10.0.0.99", 80, "tcp", "192.168.0.5", 80))
    store.add_forward(Forward.checked("10.0.0.41", 8080, "tcp", "192.168.0.5", 80))
    with pytest.raises(InputError, match="already forwarded"):
        store.add_forward(Forward.checked("10.0.0.41", 8080, "tcp", "192.168.0.6", 80))


@pytest.fixture
def scratch_ns():
    name = f"omlnat{uuid.uuid4().hex[:6]}"
    netns.add(name)
    yield netns.in_netns(name)
    netns.delete(name)


def test_rendered_table_loads_and_reads_back_equal(store, scratch_ns):
    store.map(5, 0, "192.168.0.5", 0)
    store.add_forward(Forward.checked("10.0.0.41", 8080, "tcp", "192.168.0.7", 80))
    state = store.state()
    for _ in range(2):  # the file replaces the table: loading it twice is the same table
        scratch_ns.run(["nft", "-f", "-"], input=render(state))
    have = read_back(scratch_ns.run(["nft", "-j", "list", "table", "ip", "onemetal"]).stdout)
    assert compare(desired(state), have) == []
    assert compare(desired(NatState((), (), (), ())), have) != []


# -- generation ------------------------------------------------------------------------------
def test_every_change_increments_the_generation_and_a_refused_one_or_a_read_does_not(store):
    start = store.generation
    store.map(5, 0, "192.168.0.5", 0)
    assert store.generation == start + 1
    store.state()
    with pytest.raises(InputError):
        store.map(5, 0, "192.168.0.5", 0)
    assert store.generation == start + 1
    store.unmap(vm_id=5)
    store.add_forward(Forward.checked("10.0.0.41", 8080, "tcp", "192.168.0.7", 80))
    assert store.generation == start + 3
    assert store.unmap(vm_id=99) == [] and store.generation == start + 3  # nothing removed
    assert store.state().generation == start + 3


def test_generation_persists_and_the_gateway_payload_carries_it(store, tmp_path):
    from onemetal.config import Config
    from onemetal.nat.gateway import payload

    store.map(5, 0, "192.168.0.5", 0)
    again = Store(store.path)
    assert again.generation == store.generation > 0
    assert json.loads(payload(Config(), again))["generation"] == store.generation


OLD_STORE = [  # a store written by the first schema, before generations and owners
    "INSERT INTO vnets VALUES (0, '192.168.0.0/24', '192.168.0.1', '10.0.0.41', 100)",
    "INSERT INTO pools VALUES ('aws')",
    "INSERT INTO addresses VALUES ('3.3.3.2', '10.0.0.42', 'aws')",
    "INSERT INTO mappings (eip, vm_id, nic_id, vm_ip, vnet_id) "
    "VALUES ('3.3.3.2', 5, 0, '192.168.0.5', 0)",
]


def test_a_first_schema_store_is_migrated_with_its_mappings_kept(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + ";".join(OLD_STORE) + ";PRAGMA user_version = 1;")
    db.close()
    migrated = Store(path)
    assert migrated.version == len(MIGRATIONS) == 3
    assert [m.eip for m in migrated.state().mappings] == ["3.3.3.2"]
    assert migrated.generation == 1  # the migration's own change
    columns = {r[1] for r in migrated.db.execute("PRAGMA table_info(mappings)")}
    assert {"uid", "gid"} <= columns


# -- quotas ----------------------------------------------------------------------------------
def test_user_quota_refuses_the_next_eip_naming_the_vm_and_the_key(store):
    quota = Quota(user=1, group=Quota.UNLIMITED)
    store.map(5, 0, "192.168.0.5", 0, owner=Owner(2, 100), quota=quota)
    before = store.state()
    with pytest.raises(InputError, match=r"^VM\[ID=6\]/USER_TEMPLATE/EIP: user 2 already holds "
                       r"1 Elastic IP\(s\), its quota \(nat.eip_quota_user = 1\)"):
        store.map(6, 0, "192.168.0.6", 0, owner=Owner(2, 100), quota=quota)
    assert store.state() == before
    assert store.map(7, 0, "192.168.0.7", 0, owner=Owner(3, 100), quota=quota).vm_id == 7


def test_group_quota_counts_every_user_of_the_group(store):
    quota = Quota(user=Quota.UNLIMITED, group=2)
    for vm, uid in ((5, 2), (6, 3)):
        store.map(vm, 0, f"192.168.0.{vm}", 0, owner=Owner(uid, 100), quota=quota)
    with pytest.raises(InputError, match=r"group 100 already holds 2 .*nat.eip_quota_group = 2"):
        store.map(7, 0, "192.168.0.7", 0, owner=Owner(4, 100), quota=quota)
    store.map(7, 0, "192.168.0.7", 0, owner=Owner(4, 101), quota=quota)


def test_an_administrators_map_bypasses_the_quota_but_counts_against_it(store):
    store.map(5, 0, "192.168.0.5", 0, owner=Owner(2, 100))
    store.map(6, 0, "192.168.0.6", 0, owner=Owner(2, 100))  # no quota given: the admin's
    with pytest.raises(InputError, match="user 2 already holds 2"):
        store.map(7, 0, "192.168.0.7", 0, owner=Owner(2, 100), quota=Quota(2, 10))
    with pytest.raises(InputError, match="owner"):
        store.map(7, 0, "192.168.0.7", 0, quota=Quota(2, 10))


MAP_WITH_QUOTA = """
import sys
sys.path.insert(0, {drivers!r})
from onemetal.errors import InputError
from onemetal.nat.model import Owner, Quota
from onemetal.nat.store import Store
store = Store({path!r})
vm = int(sys.argv[1])
try:
    store.map(vm, 0, "192.168.0." + sys.argv[1], 0, owner=Owner(2, 100), quota=Quota(2, 10))
    print("mapped")
except InputError as exc:
    print("refused", exc)
"""


def test_ten_concurrent_maps_of_one_user_stay_within_the_quota(store):
    from conftest import REPO
    store.create_pool("more", [(f"3.3.4.{i}", f"10.0.1.{i}") for i in range(10)])
    code = MAP_WITH_QUOTA.format(drivers=f"{REPO}/drivers", path=store.path)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(10 + i)], stdout=subprocess.PIPE,
                              text=True) for i in range(10)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sum(o == "mapped" for o in outs) == 2, outs
    assert all("user 2 already holds 2 Elastic IP(s)" in o for o in outs if o != "mapped"), outs
    assert len(store.state().mappings) == 2


# -- release of what a reconcile judged --------------------------------------------------------
def test_release_removes_only_mappings_still_exactly_as_seen(store):
    old = store.map(5, 0, "192.168.0.5", 0)
    kept = store.map(6, 0, "192.168.0.6", 0)
    snapshot = store.state().mappings
    store.unmap(vm_id=6)
    remapped = store.map(6, 0, "192.168.0.60", 0, eip=kept.eip)  # changed since the snapshot
    assert store.release(snapshot) == [old]
    assert store.state().mappings == (remapped,)
    assert store.pending_unmarks() == [5]
