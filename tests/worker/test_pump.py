"""worker.pump: decoding raw entries and one pump cycle against a real Redis (no Celery)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
import redis

from worker.keys import CONSUMER_GROUP, Keys
from worker.pump import Pump, PumpReport, decode_entry
from worker.pump_lock import PumpLock
from worker.ratelimit import RateLimiter
from worker.resolve import Resolved
from worker.schema import ContactEvent, encode_event
from worker.settings import Settings
from worker.store import Claim, InvalidEntry, MergeStore

T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)


def event_text(email: str, **contact: object) -> str:
    return encode_event({"email": email, **contact}, occurred_at=T0)[1]


def test_decode_entry_without_event_field() -> None:
    """An entry without an 'event' field is invalid, names the fields it has and keeps them."""
    decoded = decode_entry("1-0", {b"payload": b"{}", b"x": b"1"})
    assert isinstance(decoded, InvalidEntry)
    assert decoded.entry_id == "1-0"
    assert decoded.errors == {"_entry": ["Entry has no 'event' field (fields: ['payload', 'x'])."]}
    assert json.loads(decoded.raw) == {"payload": "{}", "x": "1"}
    assert decoded.event_id is None


def test_decode_entry_with_invalid_utf8() -> None:
    """An event that is not UTF-8 is invalid and kept with replacement characters."""
    decoded = decode_entry("1-0", {b"event": b'{"v": 1, "x": "\xff\xfe"}'})
    assert isinstance(decoded, InvalidEntry)
    assert decoded.errors == {"_event": ["Event is not valid UTF-8."]}
    assert "\ufffd" in decoded.raw


def test_decode_entry_with_bad_json() -> None:
    """Broken JSON is invalid, with the raw text kept and no event id."""
    decoded = decode_entry("1-0", {b"event": b'{"v": 1,'})
    assert isinstance(decoded, InvalidEntry)
    assert decoded.errors == {"_event": ["Not valid JSON: JSONDecodeError."]}
    assert decoded.raw == '{"v": 1,'
    assert decoded.event_id is None


def test_decode_entry_with_invalid_event_keeps_its_id() -> None:
    """A well-formed but invalid event is invalid with marshmallow's messages and its event id."""
    document = json.loads(event_text("jon@example.com"))
    document["contact"]["orgid"] = 5
    decoded = decode_entry("1-0", {b"event": json.dumps(document).encode()})
    assert isinstance(decoded, InvalidEntry)
    assert "orgid" in decoded.errors["contact"]
    assert decoded.event_id == document["id"]


def test_decode_entry_with_valid_event() -> None:
    """A valid event decodes to a ContactEvent."""
    decoded = decode_entry("1-0", {b"event": event_text("Jon@Example.com", firstName="J").encode()})
    assert isinstance(decoded, ContactEvent)
    assert decoded.email == "jon@example.com"
    assert decoded.attributes == {"firstName": "J"}


class Recorder:
    def __init__(self) -> None:
        self.claims: list[Claim] = []
        self.invalid: list[InvalidEntry] = []


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> MergeStore:
    merge_store = MergeStore(redis_client, Keys(key_prefix))
    merge_store.ensure_group()
    return merge_store


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def make_pump(
    store: MergeStore,
    recorder: Recorder,
    *,
    consumer: str = "pump-1",
    reclaim_idle_s: float = 15.0,
    monotonic: FakeMonotonic | None = None,
    **settings: object,
) -> Pump:
    options: dict[str, object] = {
        "key_prefix": store.keys.prefix,
        "debounce_s": 0.0,
        "reclaim_idle_s": 1e9,  # valid for any window; replaced below
    }
    options.update(settings)
    # Built directly, without derive()'s checks: these tests reclaim at once on purpose.
    timings = dataclasses.replace(
        Settings(**options).timings,  # type: ignore[arg-type]
        reclaim_idle_s=reclaim_idle_s,
    )
    return Pump(
        store,
        settings=Settings(**options),  # type: ignore[arg-type]
        enqueue_syncs=recorder.claims.extend,
        resolve=Resolved,  # references stay as written: no catalog in these tests
        on_invalid=recorder.invalid.append,
        consumer=consumer,
        block_ms=10,
        timings=timings,
        monotonic=monotonic or FakeMonotonic(),
    )


def test_cycle_ingests_claims_and_reports(store: MergeStore, recorder: Recorder) -> None:
    """One cycle merges valid events, dead-letters bad ones, and enqueues each due email once."""
    events = store.keys.events
    store.redis.xadd(events, {"event": event_text("a@example.com", firstName="A")})
    store.redis.xadd(events, {"event": event_text("a@example.com", lastName="B")})
    store.redis.xadd(events, {"event": event_text("b@example.com")})
    bad_id = store.redis.xadd(events, {"event": "garbage"}).decode()
    store.redis.xadd(events, {"nothing": "here"})
    pump = make_pump(store, recorder)
    report = PumpReport()
    pump.cycle(report)
    assert report.as_dict() == {
        "cycles": 1,
        "merged": 3,
        "stale": 0,
        "invalid": 2,
        "reclaimed": 0,
        "expired_leases": 0,
        "claimed": 2,
        "paused_cycles": 0,
        "rejected": 0,
        "deferred": 0,
        "bulk_claimed": 0,
        "bulk_steps": 0,
    }
    assert sorted(claim.email for claim in recorder.claims) == ["a@example.com", "b@example.com"]
    assert len(recorder.invalid) == 2
    assert recorder.invalid[0].entry_id == bad_id
    assert store.redis.xlen(events) == 0
    assert store.redis.xlen(store.keys.dead) == 2
    assert store.redis.zcard(store.keys.leases) == 2


def test_cycle_leaves_debounced_emails_for_later(store: MergeStore, recorder: Recorder) -> None:
    """With a debounce, the cycle merges the event but claims nothing yet."""
    store.redis.xadd(store.keys.events, {"event": event_text("a@example.com")})
    report = PumpReport()
    make_pump(store, recorder, debounce_s=60.0).cycle(report)
    assert (report.merged, report.claimed) == (1, 0)
    assert recorder.claims == []
    assert store.redis.zscore(store.keys.due, "a@example.com") is not None


def test_cycle_claims_within_the_rate_budget(store: MergeStore, recorder: Recorder) -> None:
    """A cycle leases at most rate_limit * 2 s emails; the rest wait for the next cycles."""
    for n in range(5):
        store.redis.xadd(store.keys.events, {"event": event_text(f"u{n}@example.com")})
    report = PumpReport()
    pump = make_pump(store, recorder, rate_limit=1.0)
    assert [lane.max_leases for lane in pump.lanes] == [2]
    pump.cycle(report)
    assert report.claimed == 2
    pump.cycle(report)
    assert report.claimed == 2
    assert report.cycles == 2


def test_cycle_on_an_empty_stream_does_nothing(store: MergeStore, recorder: Recorder) -> None:
    """An idle cycle reports only itself."""
    report = PumpReport()
    make_pump(store, recorder).cycle(report)
    assert report.as_dict() == {**PumpReport().as_dict(), "cycles": 1}


def test_cycle_reclaims_entries_a_dead_consumer_left(store: MergeStore, recorder: Recorder) -> None:
    """Entries another consumer read but never acked are reclaimed, merged and acked."""
    store.redis.xadd(store.keys.events, {"event": event_text("a@example.com", firstName="A")})
    store.redis.xadd(store.keys.events, {"event": "garbage"})
    assert len(store.read_events("dead-consumer", count=10, block_ms=None)) == 2
    assert store.redis.xpending(store.keys.events, CONSUMER_GROUP)["pending"] == 2
    report = PumpReport()
    make_pump(store, recorder, reclaim_idle_s=0).cycle(report)
    assert (report.reclaimed, report.merged, report.invalid, report.claimed) == (2, 1, 1, 1)
    assert store.redis.xpending(store.keys.events, CONSUMER_GROUP)["pending"] == 0
    assert store.redis.xlen(store.keys.events) == 0


def test_recently_read_entries_are_not_reclaimed(store: MergeStore, recorder: Recorder) -> None:
    """Entries idle for less than reclaim_idle_s belong to a live consumer and are left alone."""
    store.redis.xadd(store.keys.events, {"event": event_text("a@example.com")})
    store.read_events("busy-consumer", count=10, block_ms=None)
    report = PumpReport()
    make_pump(store, recorder, reclaim_idle_s=600).cycle(report)
    assert report.reclaimed == 0
    assert store.redis.xpending(store.keys.events, CONSUMER_GROUP)["pending"] == 1


def test_reclaim_runs_only_every_few_seconds(store: MergeStore, recorder: Recorder) -> None:
    """The pump reclaims at most once per RECLAIM_EVERY_S of its monotonic clock."""
    clock = FakeMonotonic()
    pump = make_pump(store, recorder, reclaim_idle_s=0, monotonic=clock)
    report = PumpReport()
    pump.cycle(report)
    store.redis.xadd(store.keys.events, {"event": event_text("a@example.com")})
    store.read_events("dead-consumer", count=10, block_ms=None)
    clock.now += 1.0
    pump.cycle(report)
    assert report.reclaimed == 0
    clock.now += 5.0
    pump.cycle(report)
    assert report.reclaimed == 1


def test_cycle_returns_expired_leases(store: MergeStore, recorder: Recorder) -> None:
    """A lease that ran out is counted and its email claimed again."""
    store.redis.xadd(store.keys.events, {"event": event_text("a@example.com")})
    pump = make_pump(store, recorder)
    report = PumpReport()
    pump.cycle(report)
    store.redis.zadd(store.keys.leases, {"a@example.com": 0})
    pump.cycle(report)
    assert report.expired_leases == 1
    assert [claim.email for claim in recorder.claims] == ["a@example.com", "a@example.com"]
    assert recorder.claims[0].lease != recorder.claims[1].lease


def test_cycle_recreates_a_lost_consumer_group(store: MergeStore, recorder: Recorder) -> None:
    """If Redis lost the group, the cycle recreates it instead of failing."""
    store.redis.delete(store.keys.events)
    make_pump(store, recorder).cycle(PumpReport())
    groups = store.redis.xinfo_groups(store.keys.events)
    assert [group["name"] for group in groups] == [CONSUMER_GROUP.encode()]


def test_pump_lock_is_exclusive_and_token_guarded(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Only one PumpLock holds the key; only the holder can renew or release it."""
    keys = Keys(key_prefix)
    first = PumpLock(redis_client, keys, node="w1@host", ttl_s=10)
    second = PumpLock(redis_client, keys, node="w2@host", ttl_s=10)
    assert first.acquire() is True
    assert second.acquire() is False
    assert second.keep() is False
    second.release()
    assert redis_client.get(keys.pump_lock) == first.token.encode()
    assert first.keep() is True
    first.release()
    assert redis_client.get(keys.pump_lock) is None
    assert second.acquire() is True


def test_stop_ends_the_pump_within_a_cycle_and_release_frees_the_lock(
    store: MergeStore, recorder: Recorder, redis_client: redis.Redis
) -> None:
    """PumpLock.stop (the worker shutting down) makes Pump.run return after the current cycle, not at the window's end; release lets the next pump in."""
    lock = PumpLock(redis_client, store.keys, node="w1@host", ttl_s=10)
    assert lock.acquire()
    lock.stop()
    assert lock.keep() is False
    report = make_pump(store, recorder, pump_window_s=3600.0).run(lock)
    assert report.cycles == 1
    lock.release()
    assert redis_client.get(store.keys.pump_lock) is None
    later = PumpLock(redis_client, store.keys, node="w2@host", ttl_s=10)
    assert later.acquire()
    assert later.keep()
    later.release()


def test_a_paused_limiter_stops_claiming_but_not_ingest(
    store: MergeStore, recorder: Recorder, redis_client: redis.Redis
) -> None:
    """While a 429's pause lasts, cycles merge events but lease nothing; claims resume after it."""
    RateLimiter(redis_client, store.keys, rate_per_s=5).pause(60)
    for n in range(5):
        store.redis.xadd(store.keys.events, {"event": event_text(f"u{n}@example.com")})
    pump = make_pump(store, recorder)
    report = PumpReport()
    for _ in range(20):
        pump.cycle(report)
    assert report.merged == 5
    assert report.claimed == 0
    assert report.paused_cycles == 20
    assert recorder.claims == []
    assert redis_client.zcard(store.keys.due) == 5
    assert redis_client.zcard(store.keys.leases) == 0
    redis_client.delete(store.keys.rate_pause)
    pump.cycle(report)
    assert report.claimed == 5
