"""MergeStore.migrate_layout: hashes written by layout 1 keep every value and its order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests._layout import readable_contact, stamps
from worker.keys import Keys
from worker.stamp import Order, order_key, stamp
from worker.store import MergeStore

EMAIL = "jon@example.com"
TTL_S = 3600.0
LEASE_S = 60.0
OCCURRED_US = 1_764_421_200_123_456
ENTRY = "1764421200200-3"


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> MergeStore:
    merge_store = MergeStore(redis_client, Keys(key_prefix))
    merge_store.ensure_group()
    return merge_store


def write_layout_1(store: MergeStore, email: str, fields: dict[str, str]) -> None:
    store.redis.hset(store.keys.contact(email), mapping=fields)


def old(state: str, name: str, value: str, occurred_us: int = OCCURRED_US) -> dict[str, str]:
    """One layout-1 value: ``<state>:<name>`` and its order key ``<state>t:<name>``."""
    return {f"{state}:{name}": value, f"{state}t:{name}": order_key(occurred_us, ENTRY)}


def contact(store: MergeStore, email: str = EMAIL) -> dict[str, str]:
    return readable_contact(store.redis.hgetall(store.keys.contact(email)), email)


def test_pending_values_keep_value_and_order(store: MergeStore) -> None:
    """Pending layout-1 values become stamped layout-2 values, and the sync sends them."""
    write_layout_1(
        store,
        EMAIL,
        {**old("p", "email", EMAIL), **old("p", "firstName", "Jon"), **old("p", "field:6", "x")}
        | {"m:n": "2"},
    )
    store.redis.zadd(store.keys.due, {EMAIL: 0})
    assert store.migrate_layout() == 1
    assert contact(store) == {
        "p:email": EMAIL,
        "p:firstName": "Jon",
        "p:field:6": "x",
        "m:n": "2",
    }
    order = Order(OCCURRED_US, 1764421200200, 3)
    assert set(stamps(store.redis.hgetall(store.keys.contact(EMAIL))).values()) == {order}
    _, (claim,) = store.claim_due(max_leases=10, lease_s=LEASE_S)
    begun = store.begin_sync(EMAIL, claim.lease, lease_s=LEASE_S, confirmed_ttl_s=TTL_S)
    assert begun.attributes == {"email": EMAIL, "firstName": "Jon", "field:6": "x"}


def test_confirmed_values_keep_older_events_out_and_the_ttl(store: MergeStore) -> None:
    """Confirmed values keep their order; the confirmed email and the claim counter go."""
    write_layout_1(
        store,
        EMAIL,
        {**old("c", "email", EMAIL), **old("c", "lastName", "Doe")}
        | {"m:known": "1", "m:claims": "4"},
    )
    store.redis.pexpire(store.keys.contact(EMAIL), 50_000)
    store.migrate_layout()
    assert contact(store) == {"c:lastName": "Doe", "m:known": "1"}
    assert 0 < store.redis.pttl(store.keys.contact(EMAIL)) <= 50_000
    older = stamp(OCCURRED_US - 1, "1764421300000-0")
    assert store.redis.hget(store.keys.contact(EMAIL), "c:l")[:17] > older  # type: ignore[index]


def test_an_in_flight_sync_finishes_under_its_old_lease(store: MergeStore) -> None:
    """A sync begun before the upgrade completes after it: lease and in-flight values survive."""
    write_layout_1(
        store,
        EMAIL,
        {**old("f", "email", EMAIL), **old("f", "phone", "123"), **old("p", "phone", "456", 1)}
        | {"m:lease": "5-1", "m:begun": "5-1", "m:fn": "1", "m:n": "1", "m:claims": "1"},
    )
    store.redis.zadd(store.keys.leases, {EMAIL: 2**40})
    store.migrate_layout()
    assert contact(store) == {
        "f:email": EMAIL,
        "f:phone": "123",
        "p:phone": "456",
        "m:lease": "5-1",
        "m:begun": "5-1",
        "m:fn": "1",
        "m:n": "1",
    }
    assert store.finish_sync(EMAIL, "5-1", "success", confirmed_ttl_s=TTL_S) == "success"
    assert contact(store) == {"c:phone": "123", "p:phone": "456", "m:known": "1", "m:n": "1"}


def test_runs_once_and_is_idempotent(store: MergeStore) -> None:
    """The layout key marks the store as current; a second conversion changes nothing."""
    write_layout_1(store, EMAIL, {**old("p", "email", EMAIL), "m:n": "1"})
    assert store.migrate_layout() == 1
    assert store.migrate_layout() is None
    before = store.redis.hgetall(store.keys.contact(EMAIL))
    store.redis.delete(store.keys.layout)
    assert store.migrate_layout() == 0
    assert store.redis.hgetall(store.keys.contact(EMAIL)) == before


def test_the_later_value_wins_where_both_layouts_hold_one(store: MergeStore) -> None:
    """A value written by layout 2 before the conversion is kept if it is the later one."""
    key = store.keys.contact(EMAIL)
    write_layout_1(store, EMAIL, old("p", "firstName", "Old", OCCURRED_US))
    store.redis.hset(key, "p:f", stamp(OCCURRED_US + 1, "1-0") + b"New")
    write_layout_1(store, "ann@example.com", old("p", "firstName", "Newer", OCCURRED_US + 2))
    store.redis.hset(store.keys.contact("ann@example.com"), "p:f", stamp(OCCURRED_US, "1-0") + b"x")
    store.migrate_layout()
    assert contact(store) == {"p:firstName": "New"}
    assert contact(store, "ann@example.com") == {"p:firstName": "Newer"}


@pytest.fixture
def glob_prefix(redis_client: redis.Redis) -> Iterator[str]:
    prefix = f"cs-test-[{uuid.uuid4().hex[:6]}]*"
    yield prefix
    for name in redis_client.scan_iter(count=1000):
        if name.decode().startswith(prefix):
            redis_client.delete(name)


def test_a_prefix_with_glob_characters_converts_only_its_own_hashes(
    redis_client: redis.Redis, glob_prefix: str, key_prefix: str
) -> None:
    """SCAN matches the prefix literally: another prefix's hashes are not touched."""
    mine, other = (
        MergeStore(redis_client, Keys(glob_prefix)),
        MergeStore(redis_client, Keys(key_prefix)),
    )
    write_layout_1(mine, EMAIL, old("p", "phone", "1"))
    write_layout_1(other, EMAIL, old("p", "phone", "2"))
    assert mine.migrate_layout() == 1
    assert contact(mine) == {"p:phone": "1"}
    assert redis_client.hgetall(other.keys.contact(EMAIL)) == {
        b"p:phone": b"2",
        b"pt:phone": order_key(OCCURRED_US, ENTRY).encode(),
    }
