"""Which pools the VM hooks may take a group's Elastic IPs from (nat.eip_group_pools), against
the real SQLite store: an address asked by name, EIP=yes, the settings, and the administrator."""

from __future__ import annotations

import pytest
from test_nat_eip_policy import running, store, vm_xml  # noqa: F401 (store: the fixture)

from onemetal.config import NatConfig, parse
from onemetal.errors import ConfigError, InputError
from onemetal.nat import policy
from onemetal.nat.model import Owner
from onemetal.nat.store import Store

POOLS = NatConfig(eip_groups=("*",), eip_quota_user=-1, eip_quota_group=-1,
                  eip_group_pools=("eip-users=aws", "105=other,aws", "*=spare"))


def with_pools(store: Store) -> Store:
    store.create_pool("other", [(f"3.3.4.{i}", f"10.0.1.{i}") for i in range(2, 4)])
    store.create_pool("spare", [("3.3.5.2", "10.0.2.2")])
    return store


def test_an_address_of_a_pool_the_group_may_not_use_is_refused_and_nothing_mapped(store):
    with_pools(store)
    before = store.state()
    for address in ("3.3.4.2", "3.3.5.2"):  # another group's pool, the "*" pool
        with pytest.raises(InputError) as refused:
            running(store, POOLS, vm_xml(5).replace("[yes]", f"[{address}]"))
        assert str(refused.value) == f"VM[ID=5]/USER_TEMPLATE/EIP: {address} is not in pool 'aws'"
    assert store.state() == before  # not even the generation moved
    assert running(store, POOLS, vm_xml(5).replace("[yes]", "[3.3.3.5]"))[0].endswith(
        "EIP 3.3.3.5 via 10.0.0.45")


def test_eip_yes_takes_only_from_the_groups_pools(store):
    with_pools(store)
    cfg = POOLS
    taken = [running(store, cfg, vm_xml(i)) for i in range(2, 8)]  # all six addresses of aws
    assert {m.eip for m in store.state().mappings} == {f"3.3.3.{i}" for i in range(2, 8)}, taken
    with pytest.raises(InputError, match=r"^VM\[ID=8\]/USER_TEMPLATE/EIP: no free Elastic IP in "
                                         r"pool 'aws'$"):
        running(store, cfg, vm_xml(8))  # other and spare still have free addresses
    by_id = running(store, cfg, vm_xml(9, gid=105, gname="by-id"))
    assert by_id[0].endswith("EIP 3.3.4.2 via 10.0.1.2")  # its own pools, in order of private IP
    assert running(store, cfg, vm_xml(10, gid=7, gname="x"))[0].endswith("EIP 3.3.5.2 via 10.0.2.2")


def test_a_group_in_no_entry_gets_none_and_an_empty_setting_means_any_pool(store):
    with_pools(store)
    cfg = NatConfig(eip_groups=("*",), eip_group_pools=("eip-users=aws",))
    with pytest.raises(InputError) as refused:
        running(store, cfg, vm_xml(5, gid=7, gname="x"))
    assert str(refused.value) == (
        'VM[ID=5]/USER_TEMPLATE/EIP: group 7 (x) may take Elastic IPs from no pool: '
        'nat.eip_group_pools in onemetal.conf lists neither it nor "*"')
    assert store.state().mappings == ()
    anywhere = NatConfig(eip_groups=("*",), eip_quota_user=-1, eip_quota_group=-1)
    spare = running(store, anywhere, vm_xml(6).replace("[yes]", "[3.3.5.2]"))
    assert spare[0].endswith("EIP 3.3.5.2 via 10.0.2.2")


def test_an_administrators_map_ignores_the_group_pools(store):
    with_pools(store)
    store.map(5, 0, "192.168.0.5", 0, eip="3.3.5.2", owner=Owner(2, 100))  # `onenat map --eip`
    assert store.map(6, 0, "192.168.0.6", 0, pool="other").eip == "3.3.4.2"  # `--pool other`
    assert running(store, POOLS, vm_xml(5)) == ["VM 5: already mapped"]
    assert {(m.vm_id, m.eip) for m in store.state().mappings} == {(5, "3.3.5.2"), (6, "3.3.4.2")}


@pytest.mark.parametrize("entry,message", [
    ("aws", "nat.eip_group_pools[0]: 'aws': give \"GROUP=POOL[,POOL...]\""),
    ("a=b=c", "nat.eip_group_pools[0]: 'a=b=c': give"),
    ("=aws", "nat.eip_group_pools[0]: is empty"),
    ("100=", "nat.eip_group_pools[0]: is empty"),
    ("100=aws,", "nat.eip_group_pools[0]: is empty"),
    ("a b=aws", "nat.eip_group_pools[0]: 'a b' contains characters"),
    ("100=a b", "nat.eip_group_pools[0]: 'a b' contains characters"),
])
def test_bad_group_pools_name_their_entry(entry, message):
    cfg = parse(f'[nat]\neip_group_pools = ["{entry}"]\n').nat
    with pytest.raises(ConfigError) as bad:
        policy.group_pools(cfg)
    assert str(bad.value).startswith(message), str(bad.value)


def test_group_pools_parse_from_toml_and_a_group_listed_twice_is_refused():
    cfg = parse('[nat]\neip_group_pools = ["eip-users=aws", "100=aws,other", "*=spare"]\n').nat
    assert policy.group_pools(cfg) == {"eip-users": ("aws",), 100: ("aws", "other"),
                                       "*": ("spare",)}
    twice = NatConfig(eip_group_pools=("100=aws", "100=other"))
    with pytest.raises(ConfigError, match=r"^nat.eip_group_pools\[1\]: group 100 is listed twice"):
        policy.group_pools(twice)
