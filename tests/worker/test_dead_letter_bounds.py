"""Dead letters are bounded by count and by age, the trimming is counted, and reading pages.

A producer bug must not be able to fill Redis (compose runs it with noeviction) through
an ever-growing ``{prefix}:dead``: every script that writes a dead letter trims the stream.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis

from tests.worker.test_metrics import one, scrape
from worker import deadletters
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.schema import decode_event, encode_event
from worker.status import read_status
from worker.store import InvalidEntry, MergeStore

T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


def bounded_store(client: redis.Redis, keys: Keys, **bounds: Any) -> MergeStore:
    store = MergeStore(client, keys, **bounds)
    store.ensure_group()
    return store


def add_invalid(store: MergeStore, client: redis.Redis, count: int) -> list[str]:
    """Put ``count`` entries in the stream, read them, and dead-letter them in one batch each."""
    entry_ids = []
    for n in range(count):
        entry_id = client.xadd(store.keys.events, {"event": f"garbage {n}"}).decode()
        client.xreadgroup("workers", "c1", {store.keys.events: ">"})
        store.ingest(
            [], [InvalidEntry(entry_id, {"_event": ["bad"]}, f"garbage {n}")], debounce_s=0
        )
        entry_ids.append(entry_id)
    return entry_ids


def dead_letter_a_sync(store: MergeStore, email: str) -> None:
    _, text = encode_event({"email": email, "firstName": "A"}, occurred_at=T0)
    store.ingest([("1-0", decode_event(text))], [], debounce_s=0)
    (claim,) = store.claim_due(max_leases=10, lease_s=60).claims
    store.begin_sync(email, claim.lease, lease_s=60, confirmed_ttl_s=0)
    store.finish_sync(email, claim.lease, "dead", confirmed_ttl_s=0, reason="api_rejected")


def trimmed(client: redis.Redis, keys: Keys) -> int:
    return int(client.hget(keys.stats, "dead_trimmed") or 0)


def test_count_bound_keeps_the_newest_and_counts_the_rest(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """With DEAD_LETTER_MAX_COUNT=3, five invalid events leave the newest three dead letters; two count as trimmed."""
    store = bounded_store(redis_client, keys, dead_letter_max_count=3)
    add_invalid(store, redis_client, 5)
    kept = [fields[b"raw"] for _, fields in redis_client.xrange(keys.dead)]
    assert kept == [b"garbage 2", b"garbage 3", b"garbage 4"]
    assert trimmed(redis_client, keys) == 2
    dead_letter_a_sync(store, "jon@example.com")  # finish.lua trims as well
    assert redis_client.xlen(keys.dead) == 3
    assert trimmed(redis_client, keys) == 3
    assert redis_client.xrange(keys.dead)[-1][1][b"email"] == b"jon@example.com"


def test_age_bound_drops_letters_older_than_max_age(redis_client: redis.Redis, keys: Keys) -> None:
    """With DEAD_LETTER_MAX_AGE_S, letters older than it go when the next one is written; newer ones stay."""
    old_ms = int(redis_client.time()[0]) * 1000 - 7200 * 1000
    redis_client.xadd(
        keys.dead, {"reason": "invalid_event", "raw": "two hours old"}, id=f"{old_ms}-0"
    )
    redis_client.xadd(keys.dead, {"reason": "invalid_event", "raw": "recent"}, id="*")
    store = bounded_store(redis_client, keys, dead_letter_max_age_s=3600)
    dead_letter_a_sync(store, "jon@example.com")
    kept = [
        fields.get(b"raw", fields.get(b"email")) for _, fields in redis_client.xrange(keys.dead)
    ]
    assert kept == [b"recent", b"jon@example.com"]
    assert trimmed(redis_client, keys) == 1
    add_invalid(store, redis_client, 1)  # ingest.lua applies the age bound too
    assert redis_client.xlen(keys.dead) == 3
    assert trimmed(redis_client, keys) == 1


def test_status_and_metrics_report_what_was_trimmed(redis_client: redis.Redis, keys: Keys) -> None:
    """contact-sync status and the Prometheus exporter both show the trimmed count."""
    store = bounded_store(redis_client, keys, dead_letter_max_count=1)
    add_invalid(store, redis_client, 4)
    status = read_status(redis_client, keys)
    assert (status.dead_letters, status.dead_letters_trimmed) == (1, 3)
    assert one(scrape(redis_client, keys), "contact_sync_dead_letters_trimmed_total") == 3


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletters, "PAGE_SIZE", 2)


def test_listing_replay_and_purge_read_in_pages(
    redis_client: redis.Redis, keys: Keys, small_pages: None
) -> None:
    """With pages of 2, list, --reason filtering, replay and purge still see all 7 letters, and no XRANGE asks for more than a page."""
    reasons = ["invalid_event", "api_rejected"] * 3 + ["invalid_event"]
    for n, reason in enumerate(reasons):
        _, text = encode_event({"email": f"u{n}@example.com"}, occurred_at=T0)
        redis_client.xadd(keys.dead, {"reason": reason, "raw": text})
    letters = DeadLetters(redis_client, keys)
    counts: list[Any] = []
    xrange = letters.redis.xrange

    def counting_xrange(*args: Any, **kwargs: Any) -> Any:
        counts.append(kwargs.get("count"))
        return xrange(*args, **kwargs)

    letters.redis = type("Spy", (), {"__getattr__": lambda _, name: getattr(redis_client, name)})()
    letters.redis.xrange = counting_xrange
    assert len(letters.list(limit=100)) == 7
    assert [letter.reason for letter in letters.list(limit=3, reason="api_rejected")] == [
        "api_rejected"
    ] * 3
    assert len(letters.list(limit=2, reason="invalid_event")) == 2
    replayed = letters.replay_all(reason="api_rejected")
    assert list(replayed.values()) == ["replayed"] * 3
    assert redis_client.xlen(keys.events) == 3
    assert letters.purge_all(reason="invalid_event") == 4
    assert redis_client.xlen(keys.dead) == 0
    assert counts
    assert set(counts) == {2}
