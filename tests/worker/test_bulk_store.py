"""worker.bulk_store and its Lua on real Redis: when backlog mode leases a batch, how steps
are handed out and owned, how a batch's leases are renewed, and how claim.lua shares the
due backlog with it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from worker.bulk_store import BatchClaim, BulkLimits, BulkStore
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.schema import decode_event, encode_event
from worker.store import MergeStore

# Small numbers with the production shape: threshold > batch > fewest in a batch.
LIMITS = BulkLimits(min_backlog=30, max_batch=10, min_batch=3, settled_s=1.0, max_batches=20)
LEASE_S = 60.0
T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def bulk(redis_client: redis.Redis, keys: Keys) -> BulkStore:
    return BulkStore(redis_client, keys)


@pytest.fixture
def store(redis_client: redis.Redis, keys: Keys) -> MergeStore:
    merge_store = MergeStore(redis_client, keys)
    merge_store.ensure_group()
    return merge_store


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


_names = itertools.count()


def make_due(client: redis.Redis, keys: Keys, count: int, *, age_s: float) -> list[str]:
    """``count`` new emails due for ``age_s`` seconds (a negative age: due in the future),
    the first the oldest by a millisecond each."""
    emails = [f"e{next(_names):05d}@example.com" for _ in range(count)]
    now = redis_now_ms(client)
    client.zadd(
        keys.due, {email: now - int(age_s * 1000) - count + n for n, email in enumerate(emails)}
    )
    return emails


def due(client: redis.Redis, keys: Keys) -> set[str]:
    return {member.decode() for member in client.zrange(keys.due, 0, -1)}


def bulk_leased(client: redis.Redis, keys: Keys) -> set[str]:
    return {member.decode() for member in client.zrange(keys.bulk_leases, 0, -1)}


def claim_all(bulk: BulkStore, limits: BulkLimits = LIMITS) -> list[BatchClaim]:
    """Claim batches until one call leases none; the calls that leased, in order."""
    claims = []
    while (claim := bulk.claim_batch(limits, lease_s=LEASE_S)).batch_id is not None:
        claims.append(claim)
        assert len(claims) < 100
    return claims


def emails_of(claim: BatchClaim) -> list[str]:
    return [email for email, _ in claim.members]


# -- bulk_claim.lua ------------------------------------------------------------------------


def test_no_batch_below_the_threshold(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """29 settled due emails (threshold 30), plus some not due yet, lease nothing and leave backlog mode off."""
    backlog = make_due(redis_client, keys, 29, age_s=5)
    later = make_due(redis_client, keys, 10, age_s=-30)
    claim = bulk.claim_batch(LIMITS, lease_s=LEASE_S)
    assert claim == BatchClaim(mode=False, due=29)
    assert not redis_client.exists(keys.bulk_mode)
    assert due(redis_client, keys) == {*backlog, *later}
    assert bulk_leased(redis_client, keys) == set()
    assert redis_client.zcard(keys.bulk_batches) == 0


def test_backlog_mode_starts_at_the_threshold_and_drains_its_last_partial_batch(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """34 due emails (threshold 30) drain in batches of 10, 10, 10 and 4, oldest first, although the due count falls under the threshold after the first; then the mode ends."""
    backlog = make_due(redis_client, keys, 34, age_s=5)
    claims = claim_all(bulk)
    assert [len(claim.members) for claim in claims] == [10, 10, 10, 4]
    assert [claim.due for claim in claims] == [34, 24, 14, 4]
    assert [email for claim in claims for email in emails_of(claim)] == backlog
    assert due(redis_client, keys) == set()
    assert bulk_leased(redis_client, keys) == set(backlog)
    assert not redis_client.exists(keys.bulk_mode)
    # Each email got a lease token of its own, recorded as claim.lua records a sync's.
    tokens = {email: token for claim in claims for email, token in claim.members}
    assert len(set(tokens.values())) == 34
    stored = redis_client.hgetall(keys.lease_tokens)
    assert {k.decode(): v.decode() for k, v in stored.items()} == tokens


def test_backlog_mode_ends_when_fewer_than_min_batch_settled_emails_remain(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """32 due: three batches of 10; the last 2 (fewer than 3) stay due for the sync path, the mode ends, and a few more due emails do not start it again below the threshold."""
    backlog = make_due(redis_client, keys, 32, age_s=5)
    assert [len(claim.members) for claim in claim_all(bulk)] == [10, 10, 10]
    assert due(redis_client, keys) == set(backlog[30:])
    assert not redis_client.exists(keys.bulk_mode)
    make_due(redis_client, keys, 20, age_s=5)
    assert bulk.claim_batch(LIMITS, lease_s=LEASE_S) == BatchClaim(mode=False, due=22)


def test_only_emails_due_for_settled_s_go_into_a_batch(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """Emails due for less than settled_s count towards the threshold but are live traffic: no batch takes them, and once only they are left the mode ends."""
    limits = dataclasses.replace(LIMITS, settled_s=30)  # wide margins, for a slow machine
    settled = make_due(redis_client, keys, 25, age_s=60)
    live = make_due(redis_client, keys, 10, age_s=1)
    claims = claim_all(bulk, limits)
    assert claims[0].due == 35  # the threshold counts every due email
    assert sorted(email for claim in claims for email in emails_of(claim)) == sorted(settled)
    assert due(redis_client, keys) == set(live)
    assert not redis_client.exists(keys.bulk_mode)


def test_sync_only_emails_are_skipped_until_their_mark_runs_out(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """Emails marked sync-only stay due for the sync path, even the oldest; a mark whose time has passed is dropped and its email may be batched again."""
    backlog = make_due(redis_client, keys, 35, age_s=5)
    bulk.mark_sync_only(backlog[:5], for_s=60)
    bulk.mark_sync_only(backlog[5:6], for_s=-1)  # ran out already
    claims = claim_all(bulk)
    batched = [email for claim in claims for email in emails_of(claim)]
    assert batched == backlog[5:]
    assert due(redis_client, keys) == set(backlog[:5])
    members = {m.decode() for m in redis_client.zrange(keys.bulk_sync_only, 0, -1)}
    assert members == set(backlog[:5])


def test_at_most_max_batches_are_in_flight(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """With max_batches 2, a third claim leases nothing until a batch is done, and keeps the
    mode on meanwhile: a mode that ran out while batches waited for room once handed the
    whole backlog of a 100,000-contact bench to the sync path, whose syncs then took every
    request the polls needed, so the batches in flight never finished."""
    limits = BulkLimits(min_backlog=30, max_batch=10, min_batch=3, max_batches=2)
    make_due(redis_client, keys, 60, age_s=5)
    first = bulk.claim_batch(limits, lease_s=LEASE_S)
    second = bulk.claim_batch(limits, lease_s=LEASE_S)
    assert first.batch_id
    assert second.batch_id
    redis_client.delete(keys.bulk_mode)  # as if the batches had waited past the mode's TTL
    assert bulk.claim_batch(limits, lease_s=LEASE_S) == BatchClaim(mode=True, due=40)
    assert redis_client.pttl(keys.bulk_mode) > 0
    assert redis_client.zcard(keys.due) == 40
    steps = dict(bulk.due_steps(limit=10, step_lease_s=60))
    assert bulk.done(first.batch_id, steps[first.batch_id])
    third = bulk.claim_batch(limits, lease_s=LEASE_S)
    assert third.batch_id is not None
    assert len(third.members) == 10


def test_a_bulk_pause_holds_claiming(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """While bulk import is paused ("Rate limit exceeded."), no batch is leased, so no email waits under a lease for the pause; when it ends, claiming resumes."""
    make_due(redis_client, keys, 40, age_s=5)
    RateLimiter.bulk(redis_client, keys, per_minute=100).pause(30)
    assert bulk.claim_batch(LIMITS, lease_s=LEASE_S) == BatchClaim(mode=True, due=40)
    assert redis_client.pttl(keys.bulk_mode) > 0  # the backlog waits for bulk import
    assert redis_client.zcard(keys.due) == 40
    assert bulk_leased(redis_client, keys) == set()
    redis_client.delete(keys.bulk_pause)  # the pause ran out
    assert len(bulk.claim_batch(LIMITS, lease_s=LEASE_S).members) == 10


# -- claim.lua in backlog mode ---------------------------------------------------------------


def test_claim_in_backlog_mode_takes_live_emails_first_and_few_backlog_emails(
    bulk: BulkStore, store: MergeStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """In backlog mode the sync path takes every live email (newest first) and at most backlog_leases settled ones; a batch's leases do not use up its budget."""
    backlog = make_due(redis_client, keys, 40, age_s=60)
    batch = bulk.claim_batch(LIMITS, lease_s=LEASE_S)
    assert len(batch.members) == 10
    assert redis_client.exists(keys.bulk_mode)
    live = make_due(redis_client, keys, 4, age_s=1)

    # settled_s 30: wide margins between live and backlog, for a slow machine.
    claimed = store.claim_due(max_leases=7, lease_s=LEASE_S, settled_s=30, backlog_leases=2)
    emails = [claim.email for claim in claimed.claims]
    assert emails[:4] == live[::-1]  # live first, newest first
    assert emails[4:] == [backlog[-1], backlog[-2]]  # then 2 of the backlog, newest first
    assert redis_client.zcard(keys.leases) == 6
    assert redis_client.zcard(keys.bulk_leases) == 10  # not part of the 7

    # The backlog share is used up (6 held > 2), but a new live email still gets the last slot.
    newest = make_due(redis_client, keys, 1, age_s=0.5)
    again = store.claim_due(max_leases=7, lease_s=LEASE_S, settled_s=30, backlog_leases=2)
    assert [claim.email for claim in again.claims] == newest
    assert store.claim_due(max_leases=100, lease_s=LEASE_S, backlog_leases=2).claims == []


def test_claim_outside_backlog_mode_takes_the_oldest_due_emails(
    store: MergeStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """Without backlog mode, claim.lua takes due emails oldest first, up to its budget (the contrast that shows the mode's order is the mode's doing)."""
    backlog = make_due(redis_client, keys, 40, age_s=5)
    make_due(redis_client, keys, 4, age_s=0.2)
    claimed = store.claim_due(max_leases=7, lease_s=LEASE_S, settled_s=1.0, backlog_leases=2)
    assert [claim.email for claim in claimed.claims] == backlog[:7]


def test_claim_returns_a_batch_s_expired_leases_to_due(
    bulk: BulkStore, store: MergeStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """A batch whose leases ended (extend to 0 s, or a dead batch left to run out) gives its emails back to due on the next claim, tokens dropped."""
    make_due(redis_client, keys, 30, age_s=5)
    batch = bulk.claim_batch(LIMITS, lease_s=LEASE_S)
    assert bulk.extend(batch.members, lease_s=0) == 10
    claimed = store.claim_due(max_leases=0, lease_s=LEASE_S)
    assert claimed.expired == 10
    assert bulk_leased(redis_client, keys) == set()
    assert set(emails_of(batch)) <= due(redis_client, keys)
    assert not any(redis_client.hexists(keys.lease_tokens, email) for email in emails_of(batch))


# -- bulk_steps.lua, bulk_save.lua -----------------------------------------------------------


def test_due_steps_hands_a_step_out_once_and_again_after_its_step_lease(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """A due step is handed out once; nobody gets it again until its step lease runs out (its worker presumed dead), and then with a new token."""
    make_due(redis_client, keys, 30, age_s=5)
    batch = bulk.claim_batch(LIMITS, lease_s=LEASE_S)
    assert batch.batch_id is not None
    first = bulk.due_steps(limit=10, step_lease_s=0.3)
    assert [batch_id for batch_id, _ in first] == [batch.batch_id]
    assert bulk.due_steps(limit=10, step_lease_s=0.3) == []
    deadline = time.monotonic() + 3
    while not (again := bulk.due_steps(limit=10, step_lease_s=60)):
        assert time.monotonic() < deadline, "the step was never handed out again"
        time.sleep(0.02)
    assert [batch_id for batch_id, _ in again] == [batch.batch_id]
    # A token is the step lease's end: handed out again no earlier than the first one ended.
    assert int(again[0][1]) - 60_000 >= int(first[0][1])
    assert bulk.due_steps(limit=10, step_lease_s=60) == []


def test_due_steps_hands_out_at_most_limit_steps(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """Three due batches and a limit of 2: two now, the third on the next call."""
    make_due(redis_client, keys, 30, age_s=5)
    ids = {claim.batch_id for claim in claim_all(bulk)}
    first = bulk.due_steps(limit=2, step_lease_s=60)
    second = bulk.due_steps(limit=2, step_lease_s=60)
    assert (len(first), len(second)) == (2, 1)
    assert {batch_id for batch_id, _ in first + second} == ids


def test_save_refuses_a_superseded_token(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """Once a step is handed out again, the presumed-dead step's save and done change nothing; the new step's save records its values and its done deletes the batch."""
    make_due(redis_client, keys, 30, age_s=5)
    batch_id = bulk.claim_batch(LIMITS, lease_s=LEASE_S).batch_id
    assert batch_id is not None
    [(_, old)] = bulk.due_steps(limit=10, step_lease_s=0)  # presumed dead at once
    [(_, new)] = bulk.due_steps(limit=10, step_lease_s=60)
    assert new != old

    assert bulk.save(batch_id, old, next_in_s=0, state="built", body="[]") is None
    assert bulk.done(batch_id, old) is False
    loaded = bulk.load(batch_id)
    assert loaded is not None
    assert loaded.state == "claimed"
    assert "body" not in loaded.fields

    members = [("x@example.com", "1-1")]
    token = bulk.save(batch_id, new, next_in_s=61, state="built", members=members, polls=3)
    assert token is not None
    assert token != new
    loaded = bulk.load(batch_id)
    assert loaded is not None
    assert (loaded.state, loaded.members, loaded.number("polls")) == ("built", members, 3.0)
    assert bulk.save(batch_id, new, next_in_s=0, state="submitted") is None  # new moved on
    assert bulk.done(batch_id, token) is True
    assert bulk.load(batch_id) is None
    assert redis_client.zscore(keys.bulk_batches, batch_id) is None


# -- bulk_extend.lua --------------------------------------------------------------------------


def test_extend_renews_only_leases_the_batch_still_holds(
    bulk: BulkStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """An email whose token changed (its lease ran out and someone else claimed it) is not renewed; the others are, to the new length."""
    make_due(redis_client, keys, 30, age_s=5)
    batch = bulk.claim_batch(LIMITS, lease_s=LEASE_S)
    taken, *kept = batch.members
    redis_client.hset(keys.lease_tokens, taken[0], "someone-else")
    before = redis_client.zscore(keys.bulk_leases, taken[0])

    assert bulk.extend(batch.members, lease_s=600) == 9
    now = redis_now_ms(redis_client)
    for email, _ in kept:
        score = redis_client.zscore(keys.bulk_leases, email)
        assert score is not None
        assert now + 590_000 < score <= now + 600_000
    assert redis_client.zscore(keys.bulk_leases, taken[0]) == before
    assert bulk.extend([], lease_s=600) == 0


# -- the merge store and a batch in flight ----------------------------------------------------


def _ingest(store: MergeStore, email: str, at_s: float, **contact: Any) -> None:
    _, text = encode_event({"email": email, **contact}, occurred_at=T0 + dt.timedelta(seconds=at_s))
    entry = f"{1_764_421_200_000 + int(at_s * 1000)}-{next(_names)}"
    store.ingest([(entry, decode_event(text))], [], debounce_s=0)


def _begin_batch(store: MergeStore, keys: Keys, members: Sequence[tuple[str, str]]) -> None:
    begun = store.begin_many(
        members, lease_s=LEASE_S, confirmed_ttl_s=3600, leases_key=keys.bulk_leases
    )
    assert {b.status for b in begun} == {"send"}


def test_a_change_to_an_email_in_a_batch_in_flight_waits_for_the_batch(
    bulk: BulkStore, store: MergeStore, redis_client: redis.Redis, keys: Keys
) -> None:
    """An email leased by a batch is not due again when it changes, so the sync path cannot send the newer value before the batch lands; the batch's completion makes it due."""
    emails = [f"w{n}@example.com" for n in range(30)]
    for n, email in enumerate(emails):
        _ingest(store, email, n, firstName="Old")
    limits = BulkLimits(min_backlog=30, max_batch=30, min_batch=3, settled_s=0)
    batch = bulk.claim_batch(limits, lease_s=LEASE_S)
    assert len(batch.members) == 30
    _begin_batch(store, keys, batch.members)

    _ingest(store, emails[0], 100, firstName="New")
    assert redis_client.zscore(keys.due, emails[0]) is None
    assert store.claim_due(max_leases=100, lease_s=LEASE_S).claims == []

    results = store.finish_many(
        batch.members, "success", confirmed_ttl_s=3600, leases_key=keys.bulk_leases
    )
    assert set(results) == {"success"}
    assert [claim.email for claim in store.claim_due(max_leases=100, lease_s=LEASE_S).claims] == [
        emails[0]
    ]
