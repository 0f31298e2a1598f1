"""Every Lua script touches only the keys it declares: Redis requires it, and Cluster enforces it.

Each script call runs as a Redis ACL user allowed exactly the keys passed in KEYS, so a
script that reads or writes any other key fails with NOPERM. (claim.lua used to build
contact keys from ARGV; now the lease tokens have a hash of their own.)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from worker.bulk_store import BulkLimits, BulkStore
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.schema import decode_event, encode_event
from worker.store import InvalidEntry, MergeStore

T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)


def _literal_pattern(key: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in key)


class OnlyDeclaredKeys:
    """Runs each script call as a throwaway ACL user whose key patterns are exactly its KEYS."""

    def __init__(self, admin: redis.Redis, url: str) -> None:
        self.admin = admin
        self.url = url
        self.calls = 0

    def wrap(self, script: Any) -> Any:
        def call(keys: Sequence[str] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
            user = f"cs-test-{uuid.uuid4().hex[:12]}"
            self.admin.acl_setuser(
                user,
                enabled=True,
                nopass=True,
                commands=["+@all"],
                keys=[_literal_pattern(key) for key in keys],
            )
            connection = redis.Redis.from_url(self.url, username=user, password="unused")
            try:
                self.calls += 1
                return script(keys=keys, args=args, client=connection)
            finally:
                connection.close()
                self.admin.acl_deluser(user)

        return call


@pytest.fixture
def guard(redis_client: redis.Redis, redis_url: str) -> OnlyDeclaredKeys:
    return OnlyDeclaredKeys(redis_client, redis_url)


def event(at_s: float, email: str, **contact: Any) -> Any:
    _, text = encode_event({"email": email, **contact}, occurred_at=T0 + dt.timedelta(seconds=at_s))
    return decode_event(text)


def test_the_guard_catches_an_undeclared_key(
    guard: OnlyDeclaredKeys, redis_client: redis.Redis, key_prefix: str
) -> None:
    """A script that touches a key it did not declare fails under the guard (the check can fail)."""
    script = guard.wrap(redis_client.register_script("return redis.call('GET', ARGV[1])"))
    with pytest.raises(redis.ResponseError, match="can't access"):
        script(keys=[f"{key_prefix}:declared"], args=[f"{key_prefix}:undeclared"])
    declared = guard.wrap(redis_client.register_script("return redis.call('GET', KEYS[1])"))
    assert declared(keys=[f"{key_prefix}:declared"], args=[]) is None


def test_every_script_touches_only_its_declared_keys(
    guard: OnlyDeclaredKeys, redis_client: redis.Redis, key_prefix: str
) -> None:
    """ingest, claim, begin, finish (success, retry, dead), ratelimit and pause, through a whole life cycle."""
    keys = Keys(key_prefix)
    store = MergeStore(redis_client, keys, dead_letter_max_count=1, dead_letter_max_age_s=60)
    limiter = RateLimiter(redis_client, keys, rate_per_s=5)
    for name in ("_ingest", "_claim", "_begin", "_finish"):
        setattr(store, name, guard.wrap(getattr(store, name)))
    for name in ("_take", "_pause"):
        setattr(limiter, name, guard.wrap(getattr(limiter, name)))
    store.ensure_group()
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    valid = [(f"{n + 1}-0", event(n, email, firstName="A")) for n, email in enumerate(emails)]
    invalid = [InvalidEntry("9-0", {"x": ["bad"]}, "raw")]
    for entry_id, _ in [*valid, ("9-0", None)]:
        redis_client.xadd(keys.events, {"event": "x"}, id=entry_id)
    redis_client.xreadgroup("workers", "c1", {keys.events: ">"})
    store.ingest(valid, invalid, debounce_s=0)

    claims = store.claim_due(max_leases=10, lease_s=60).claims
    assert sorted(claim.email for claim in claims) == emails
    outcomes = iter(["success", "retry", "dead"])
    for claim in claims:
        assert (
            store.begin_sync(claim.email, claim.lease, lease_s=60, confirmed_ttl_s=0).status
            == "send"
        )
        assert limiter.try_acquire() == 0.0
        outcome = next(outcomes)
        assert (
            store.finish_sync(claim.email, claim.lease, outcome, confirmed_ttl_s=0, reason="r")
            == outcome
        )  # type: ignore[arg-type]
    limiter.pause(5)
    assert store.claim_due(max_leases=10, lease_s=60).paused_for_s > 0
    assert guard.calls == 1 + 3 * 3 + 1 + 2  # ingest, 3 x (begin, slot, finish), pause, 2 claims


def test_the_bulk_scripts_touch_only_their_declared_keys(
    guard: OnlyDeclaredKeys, redis_client: redis.Redis, key_prefix: str
) -> None:
    """bulk_claim, bulk_steps, bulk_save (save and done), bulk_extend, bulk import's limiter, and claim, begin and finish on a batch's leases in backlog mode, through a batch's life."""
    keys = Keys(key_prefix)
    store = MergeStore(redis_client, keys)
    bulk = BulkStore(redis_client, keys)
    limiter = RateLimiter.bulk(redis_client, keys, per_minute=100)
    for name in ("_ingest", "_claim", "_begin", "_finish"):
        setattr(store, name, guard.wrap(getattr(store, name)))
    for name in ("_claim", "_steps", "_save", "_extend"):
        setattr(bulk, name, guard.wrap(getattr(bulk, name)))
    for name in ("_take", "_pause"):
        setattr(limiter, name, guard.wrap(getattr(limiter, name)))
    store.ensure_group()
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    valid = [(f"{n + 1}-0", event(n, email, firstName="A")) for n, email in enumerate(emails)]
    store.ingest(valid, [], debounce_s=0)
    bulk.mark_sync_only(["d@example.com"], for_s=60)

    limits = BulkLimits(min_backlog=3, max_batch=10, min_batch=1, settled_s=0)
    batch = bulk.claim_batch(limits, lease_s=60)
    assert sorted(email for email, _ in batch.members) == emails[:3]
    # Backlog mode is on: claim.lua reads the mode and expires bulk leases too.
    assert [claim.email for claim in store.claim_due(max_leases=10, lease_s=60).claims] == [
        "d@example.com"
    ]
    [(batch_id, token)] = bulk.due_steps(limit=5, step_lease_s=60)
    assert batch_id == batch.batch_id
    for member in batch.members:  # one at a time: the guard runs each call on its own client
        [begun] = store.begin_many(
            [member], lease_s=60, confirmed_ttl_s=0, leases_key=keys.bulk_leases
        )
        assert begun.status == "send"
    assert limiter.try_acquire() == 0.0
    token = bulk.save(batch_id, token, next_in_s=0, state="submitted", ac_batch="x")
    assert token is not None
    assert bulk.extend(batch.members, lease_s=60) == 3
    for member in batch.members:
        [outcome] = store.finish_many(
            [member], "success", confirmed_ttl_s=0, leases_key=keys.bulk_leases
        )
        assert outcome == "success"
    assert bulk.done(batch_id, token)
    limiter.pause(60)
    assert bulk.claim_batch(limits, lease_s=60).batch_id is None
    # ingest, bulk claim, claim, steps, 3 begins, slot, save, extend, 3 finishes, done,
    # pause, bulk claim
    assert guard.calls == 1 + 1 + 1 + 1 + 3 + 1 + 1 + 1 + 3 + 1 + 1 + 1
