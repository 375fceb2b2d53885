"""The NAT store (SQLite) and the rendering of the gateway's nft table."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid

import pytest

from onemetal.errors import InputError
from onemetal.lab import netns
from onemetal.nat import model
from onemetal.nat.model import Forward, NatState, Vnet
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
