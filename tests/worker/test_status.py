"""worker.status: read_status() against a real Redis, with state written by hand."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from worker.keys import CONSUMER_GROUP, Keys
from worker.status import (
    SHARED_FIGURES,
    Status,
    read_overview,
    read_status,
    reported_destinations,
)


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


# -- several destinations -------------------------------------------------------------------


def test_reported_destinations_add_default_after_the_configured_ones() -> None:
    """The configured destinations keep their order; default comes last unless configured,
    since its keys hold the dead letters of events no destination takes."""
    assert reported_destinations(["default"]) == ("default",)
    assert reported_destinations(["b", "a"]) == ("b", "a", "default")
    assert reported_destinations(["a", "default", "b"]) == ("a", "default", "b")


def test_overview_reads_each_destination_from_its_own_keys(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """Two destinations show their own schedule, leases, limiter and dead letters; the
    stream and the pump are read once, as they are shared."""
    a, b = keys.for_destination("a"), keys.for_destination("b")
    now = redis_now_ms(redis_client)
    redis_client.zadd(a.due, {"x@example.com": now - 1000, "y@example.com": now - 2000})
    redis_client.zadd(b.leases, {"z@example.com": now + 30_000})
    redis_client.set(b.rate_pause, now + 3000)
    redis_client.xadd(b.dead, {"reason": "api_rejected"})
    redis_client.hincrby(a.stats, "events_ingested", 2)
    redis_client.xadd(keys.events, {"event": "{}"})
    redis_client.set(keys.pump_lock, "w1@host/0a1b2c")

    overview = read_overview(redis_client, keys, ("a", "b", "default"))

    assert list(overview.statuses) == ["a", "b", "default"]
    first, second, default = overview.statuses.values()
    assert (first.due_now, first.in_flight, first.dead_letters) == (2, 0, 0)
    assert (second.due_now, second.in_flight, second.dead_letters) == (0, 1, 1)
    assert first.limiter_paused_for_s == 0.0
    assert 2.0 < second.limiter_paused_for_s <= 3.0
    assert (first.counters, second.counters) == ({"events_ingested": 2}, {})
    assert (default.pending_contacts, default.dead_letters) == (0, 0)
    assert {status.stream_backlog for status in overview.statuses.values()} == {1}
    assert {status.pump_holder for status in overview.statuses.values()} == {"w1@host"}


def test_overview_dict_nests_each_destinations_own_figures(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """With several destinations, as_dict() has the shared figures once and the rest of each
    destination's under `destinations`."""
    redis_client.xadd(keys.for_destination("b").dead, {"reason": "api_rejected"})
    redis_client.xadd(keys.events, {"event": "{}"})

    document = read_overview(redis_client, keys, ("a", "b", "default")).as_dict()

    assert set(document) == {*SHARED_FIGURES, "destinations"}
    assert document["stream_backlog"] == 1
    assert list(document["destinations"]) == ["a", "b", "default"]
    own = {f.name for f in dataclasses.fields(Status)} - set(SHARED_FIGURES)
    for figures in document["destinations"].values():
        assert set(figures) == own
    assert [figures["dead_letters"] for figures in document["destinations"].values()] == [0, 1, 0]


def test_overview_of_default_alone_is_the_status_of_old(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """With only default, as_dict() is exactly read_status().as_dict(): no `destinations`."""
    redis_client.xadd(keys.dead, {"reason": "invalid_event"})

    overview = read_overview(redis_client, keys, ("default",))

    assert overview.single
    assert overview.as_dict() == read_status(redis_client, keys).as_dict()
    assert overview.as_dict()["dead_letters"] == 1
