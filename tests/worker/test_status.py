"""worker.status: read_status() against a real Redis, with state written by hand."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from worker.keys import CONSUMER_GROUP, Keys
from worker.status import Status, read_status


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_empty_prefix_reads_zeros_and_nones(redis_client: redis.Redis, keys: Keys) -> None:
    """A prefix nothing has written to reads as all zeros, no ages and no counters."""
    status = read_status(redis_client, keys)

    assert status == Status(
        stream_backlog=0,
        stream_unacked=0,
        oldest_event_age_s=None,
        pending_contacts=0,
        due_now=0,
        most_overdue_s=None,
        in_flight=0,
        dead_letters=0,
        dead_letters_trimmed=0,
        limiter_sent_in_window=0,
        limiter_paused_for_s=0.0,
        pump_running=False,
        pump_holder=None,
        counters={},
    )


def test_due_now_and_most_overdue_come_from_the_due_zset(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """Emails due in the past count as due now; the oldest due time sets most_overdue_s."""
    now = redis_now_ms(redis_client)
    redis_client.zadd(keys.due, {"a@example.com": now - 5000, "b@example.com": now - 1000})
    redis_client.zadd(keys.due, {"c@example.com": now + 60_000})

    status = read_status(redis_client, keys)

    assert status.pending_contacts == 3
    assert status.due_now == 2
    assert status.most_overdue_s is not None
    assert 5.0 <= status.most_overdue_s < 6.0


def test_nothing_overdue_reads_as_none(redis_client: redis.Redis, keys: Keys) -> None:
    """When every scheduled sync lies in the future, nothing is due and nothing is overdue."""
    now = redis_now_ms(redis_client)
    redis_client.zadd(keys.due, {"a@example.com": now + 60_000})

    status = read_status(redis_client, keys)

    assert (status.pending_contacts, status.due_now, status.most_overdue_s) == (1, 0, None)


def test_in_flight_counts_leases(redis_client: redis.Redis, keys: Keys) -> None:
    """Every email under lease counts as in flight."""
    now = redis_now_ms(redis_client)
    redis_client.zadd(keys.leases, {"a@example.com": now + 30_000, "b@example.com": now + 1})

    assert read_status(redis_client, keys).in_flight == 2


def test_backlog_unacked_and_oldest_event_age(redis_client: redis.Redis, keys: Keys) -> None:
    """Backlog counts every entry in the stream, unacked only those a consumer has read."""
    for n in range(3):
        redis_client.xadd(keys.events, {"event": f"{n}"})
    redis_client.xgroup_create(keys.events, CONSUMER_GROUP, id="0")
    redis_client.xreadgroup(CONSUMER_GROUP, "c1", {keys.events: ">"}, count=1)

    status = read_status(redis_client, keys)

    assert (status.stream_backlog, status.stream_unacked) == (3, 1)
    assert status.oldest_event_age_s is not None
    assert 0.0 <= status.oldest_event_age_s < 5.0


def test_limiter_pause_pump_and_counters(redis_client: redis.Redis, keys: Keys) -> None:
    """Only sends of the last second count; a pause reads in seconds; counters are ints."""
    now = redis_now_ms(redis_client)
    redis_client.lpush(keys.rate_log, now - 2000, now - 500, now)
    redis_client.set(keys.rate_pause, now + 3000)
    redis_client.set(keys.pump_lock, "w1@host/0a1b2c")
    redis_client.hincrby(keys.stats, "events_ingested", 7)
    redis_client.xadd(keys.dead, {"reason": "api_rejected"})

    status = read_status(redis_client, keys)

    assert status.limiter_sent_in_window == 2
    assert 2.0 < status.limiter_paused_for_s <= 3.0
    assert status.pump_running is True
    assert status.pump_holder == "w1@host"
    assert status.counters == {"events_ingested": 7}
    assert status.dead_letters == 1


def test_as_dict_has_every_field(redis_client: redis.Redis, keys: Keys) -> None:
    """as_dict() names every Status field, which is what `status --json` prints."""
    status = read_status(redis_client, keys)

    assert set(status.as_dict()) == {f.name for f in dataclasses.fields(Status)}
