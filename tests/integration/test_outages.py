"""API outages, 429 storms and a long-wrong token, against real workers and the emulator."""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import json
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from tests.integration._limiter_audit import Grant, LimiterAudit
from tests.integration._lww import (
    SYNC_PATH,
    T0,
    Event,
    RequestAudit,
    expected_state,
    lost_events,
    make_events,
    send_pipelined,
    stored_state,
)
from worker import cli
from worker.deadletters import DeadLetters
from worker.keys import Keys


def _sync_requests(admin: EmulatorClient) -> list[dict[str, Any]]:
    return sorted(
        (item for item in admin.requests_log() if item["path"] == SYNC_PATH),
        key=lambda item: item["t"],
    )


def _retry_delays(lines: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """email -> [(attempt, delay_s), ...] from contact.sync_retry lines, in log order."""
    delays: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)
    for line in lines:
        if line.get("event") == "contact.sync_retry":
            delays[line["email"]].append((line["attempt"], line["delay_s"]))
    return delays


# -- 3. API outage -----------------------------------------------------------------------

BASE_S, CAP_S = 0.5, 8.0


def _ceiling_s(attempt: int) -> float:
    return min(CAP_S, BASE_S * 2 ** (attempt - 1))


@pytest.mark.slow
def test_api_outage_then_hang_recovers_with_growing_jittered_backoff(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """503s for 30 s, then hangs past the client timeout for 10 s: backoff grows, jittered, to its cap; afterwards every change syncs exactly, no dead letters."""
    (worker,) = workers.start(
        1,
        concurrency=4,
        CONTACT_SYNC_DEBOUNCE_S="0.5",
        CONTACT_SYNC_BACKOFF_BASE_S=str(BASE_S),
        CONTACT_SYNC_BACKOFF_CAP_S=str(CAP_S),
        CONTACT_SYNC_HTTP_TIMEOUT_S="2",
        CONTACT_SYNC_LOG_PII="true",  # whole emails, to follow each one's delays
    )
    events = make_events(random.Random(3), count=60, emails=12, prefix="outage")
    emulator_admin.set_faults(outage={"mode": "503", "seconds": None})
    outage_start = time.monotonic()
    send_pipelined(producer, events[:30])
    time.sleep(max(0.0, outage_start + 15 - time.monotonic()))
    send_pipelined(producer, events[30:])  # newer and older (late) changes, mid-outage
    time.sleep(max(0.0, outage_start + 30 - time.monotonic()))
    emulator_admin.set_faults(outage={"mode": "hang", "seconds": 10}, hang_s=3)
    outage_end = time.monotonic() + 10
    assert emulator_admin.contacts() == {}

    expected = expected_state(events)
    wait_until(
        lambda: drained(redis_conn, keys) and stored_state(emulator_admin) == expected,
        timeout_s=90,
        interval_s=0.2,
        message="everything synced after the outage",
    )
    recovery_s = time.monotonic() - outage_end
    assert lost_events(events, stored_state(emulator_admin)) == []
    assert redis_conn.xlen(keys.dead) == 0

    requests = _sync_requests(emulator_admin)
    statuses = collections.Counter(item["status"] for item in requests)
    assert statuses[503] > 0
    hung = [
        item for item in requests if item["status"] == 503 and item["t"] > requests[0]["t"] + 30
    ]
    assert hung, "no request hung"
    retries = worker.events_named("contact.sync_retry")
    assert {line["error"] for line in retries} == {"ApiServerError", "ApiTransportError"}

    delays = _retry_delays(retries)
    assert set(delays) == set(expected)
    by_attempt: dict[int, list[float]] = collections.defaultdict(list)
    for email, series in delays.items():
        attempts = [attempt for attempt, _ in series]
        assert attempts == list(range(1, len(attempts) + 1)), (email, attempts)
        assert len(attempts) >= 6, (email, series)  # the cap (attempt 5 on) is reached
        for attempt, delay in series:
            assert 0 <= delay <= _ceiling_s(attempt) + 0.001, (email, attempt, delay)
            by_attempt[attempt].append(delay)
    means = {attempt: statistics.mean(values) for attempt, values in by_attempt.items()}
    # Ceilings 0.5, 1, 2, 4, then 8 for good: full jitter averages half the ceiling.
    for attempt in (1, 2, 3):
        assert means[attempt + 2] > means[attempt], means
    capped = [delay for attempt, values in by_attempt.items() if attempt >= 5 for delay in values]
    assert max(capped) <= CAP_S
    assert statistics.mean(capped) > means[3]
    all_delays = [delay for values in by_attempt.values() for delay in values]
    assert len(set(all_delays)) >= 0.9 * len(all_delays), "delays are not jittered"

    audit = RequestAudit.of(emulator_admin.requests_log())
    print(
        f"\noutage: {len(events)} events, {len(expected)} emails, {len(requests)} requests "
        f"({dict(statuses)}), duplicates {audit.duplicates} (resending {audit.resending}), "
        f"recovery {recovery_s:.1f}s, "
        f"mean delay by attempt {json.dumps({a: round(m, 2) for a, m in sorted(means.items())})}"
    )


# -- 4. 429 storms -----------------------------------------------------------------------


@pytest.fixture
def limiter_audit(redis_url: str, keys: Keys) -> Iterator[LimiterAudit]:
    audit = LimiterAudit(redis_url, keys).start()
    yield audit
    audit.stop()


def _check_nothing_left_early(
    requests: list[dict[str, Any]], audit: LimiterAudit
) -> dict[str, float]:
    """Every request that reached the emulator inside a 429's Retry-After was already on the wire.

    For each 429: ``a`` is its arrival at the emulator, which answers at once. Its worker
    reads the answer and immediately calls ``pause.lua``; that pause (a position in Redis's
    MONITOR order, and a time on the same host clock) is when the 429 reached a worker. A
    request counts as already on the wire if the shared limiter granted its slot before
    that pause: after its grant, a worker only builds and writes the request. So every
    request arriving in (a, pause + Retry-After), a window that covers the announced
    (a + Retry-After), must have been granted before the pause; and no slot may be granted
    while any pause is in force. Returns figures for docs/reliability.md.
    """
    # The limiter: after a pause was set, no slot before it ends (exact, in Redis's order).
    until_ms = 0
    events = sorted(
        [(grant.order, "grant", grant) for grant in audit.grants]
        + [(pause.order, "pause", pause) for pause in audit.pauses],
        key=lambda item: item[0],
    )
    for _, kind, item in events:
        if kind == "pause" and item.until_ms is not None:
            until_ms = max(until_ms, item.until_ms)
        elif kind == "grant":
            assert item.ms >= until_ms, f"slot granted {until_ms - item.ms} ms before a pause ended"

    grants: dict[str, list[Grant]] = collections.defaultdict(list)
    for grant in audit.grants:
        if grant.email is not None:
            grants[grant.email].append(grant)

    def grant_of(request: dict[str, Any]) -> Grant:
        series = grants[request["email"]]
        index = bisect.bisect_right([g.time_s for g in series], request["t"]) - 1
        assert index >= 0, f"no limiter slot before the request {request}"
        return series[index]

    limited = [item for item in requests if item["status"] == 429]
    assert len(audit.pauses) == len(limited), "each 429 pauses every worker exactly once"
    in_flight = 0
    margins = []
    for hit in limited:
        pause = next(
            (p for p in audit.pauses if p.email == hit["email"] and p.time_s >= hit["t"]), None
        )
        assert pause is not None, f"no pause after the 429 at {hit}"
        window_end = pause.time_s + pause.pause_ms / 1000
        for request in requests:
            if request is hit or not hit["t"] < request["t"] < window_end:
                continue
            grant = grant_of(request)
            assert grant.order < pause.order, (
                f"{request['email']} reached the API {request['t'] - hit['t']:.3f}s after a 429 "
                f"with Retry-After {pause.pause_ms} ms, from a slot granted after the pause"
            )
            in_flight += 1
        later = [r["t"] for r in requests if grant_of(r).order > pause.order]
        if later:
            margins.append(min(later) - (hit["t"] + pause.pause_ms / 1000))
    # Redis's clock in scripts has millisecond resolution, hence the 2 ms.
    assert not margins or min(margins) > -0.002, margins
    return {
        "429s": len(limited),
        "in_flight_at_429": in_flight,
        "min_margin_ms": round(min(margins) * 1000, 1) if margins else float("nan"),
    }


@pytest.mark.slow
def test_429_storm_no_worker_sends_before_retry_after(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    limiter_audit: LimiterAudit,
) -> None:
    """Four worker processes under storms of 429s with Retry-After 1-3 s: no request leaves before the announced time; all syncs exact."""
    workers.start(4, CONTACT_SYNC_DEBOUNCE_S="0.3")
    events = make_events(random.Random(4), count=150, emails=50, prefix="storm")
    send_pipelined(producer, events)
    storms = [("2", 3), ("3", 2), ("1", 4), ("2", 3)]  # (Retry-After, how many 429s)
    forced = 0
    for retry_after, count in storms:
        synced = emulator_admin.stats()["by_status"].get("201", 0)
        wait_until(
            lambda synced=synced: emulator_admin.stats()["by_status"].get("201", 0) >= synced + 3,
            timeout_s=30,
            message="traffic between storms",
        )
        emulator_admin.set_faults(
            force_status={"status": 429, "count": count, "retry_after": retry_after}
        )
        forced += count
        wait_until(
            lambda forced=forced: emulator_admin.stats()["rate_limited"] >= forced,
            timeout_s=30,
            message="the storm's 429s",
        )
    expected = expected_state(events)
    wait_until(
        lambda: drained(redis_conn, keys) and stored_state(emulator_admin) == expected,
        timeout_s=90,
        message="drain after the storms",
    )
    assert redis_conn.xlen(keys.dead) == 0
    requests = _sync_requests(emulator_admin)
    assert emulator_admin.stats()["rate_limited"] == forced

    limiter_audit.stop()
    announced = [int(ra) * 1000 for ra, count in storms for _ in range(count)]
    assert [pause.pause_ms for pause in limiter_audit.pauses] == announced
    figures = _check_nothing_left_early(requests, limiter_audit)
    audit = RequestAudit.of(emulator_admin.requests_log())
    print(
        f"\n429 storm: {len(events)} events, {figures}, duplicates {audit.duplicates} (resending {audit.resending})"
    )


@pytest.fixture
def slower_emulator() -> Iterator[FakeActiveCampaign]:
    """An account whose real limit (4/s) is below what the workers' limiter allows (5/s)."""
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=4.0).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_429s_from_a_limit_overrun_under_clock_skew_are_survived(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    slower_emulator: FakeActiveCampaign,
    redis_conn: redis.Redis,
    keys: Keys,
    limiter_audit: LimiterAudit,
) -> None:
    """When our limiter runs ahead of the API's (API 4/s, limiter 5/s), the real 429s pause everyone; all changes sync exactly, no dead letters."""
    admin = EmulatorClient(slower_emulator.url)
    workers.start(2, CONTACT_SYNC_DEBOUNCE_S="0.3", ACTIVECAMPAIGN_URL=slower_emulator.url)
    events = make_events(random.Random(5), count=120, emails=40, prefix="skew")
    send_pipelined(producer, events)
    expected = expected_state(events)
    wait_until(
        lambda: drained(redis_conn, keys) and stored_state(admin) == expected,
        timeout_s=90,
        message="drain despite 429s",
    )
    assert redis_conn.xlen(keys.dead) == 0
    assert admin.stats()["rate_limited"] > 0, "the API's limit was never hit"
    limiter_audit.stop()
    figures = _check_nothing_left_early(_sync_requests(admin), limiter_audit)
    audit = RequestAudit.of(admin.requests_log())
    print(
        f"\nclock skew: {len(events)} events, {figures}, duplicates {audit.duplicates} (resending {audit.resending})"
    )


# -- 7. A wrong token for a long time ----------------------------------------------------

WRONG_TOKEN = "rotated-by-the-customer-0000"
CONFIG_BASE_S, CONFIG_CAP_S, MAX_AGE_S = 0.5, 2.0, 15


@pytest.mark.slow
def test_bad_token_for_a_long_time_waits_at_the_capped_backoff_then_dead_letters_and_replays(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under 403s for longer than max_retry_age_s: delays grow to the cap and stay there, nothing is dropped, then retry_expired dead letters replay to the exact state."""
    emulator_admin.set_token(WRONG_TOKEN)
    (worker,) = workers.start(
        1,
        CONTACT_SYNC_DEBOUNCE_S="0.2",
        CONTACT_SYNC_CONFIG_ERROR_BACKOFF_S=str(CONFIG_BASE_S),
        CONTACT_SYNC_BACKOFF_CAP_S=str(CONFIG_CAP_S),
        CONTACT_SYNC_MAX_RETRY_AGE_S=str(MAX_AGE_S),
        CONTACT_SYNC_LOG_PII="true",
    )
    events = make_events(random.Random(7), count=24, emails=6, prefix="token")
    send_pipelined(producer, events)
    started = time.monotonic()
    dead = DeadLetters(redis_conn, keys)

    # Until max_retry_age_s: no dead letter, nothing at the API, every change kept in Redis.
    while time.monotonic() - started < MAX_AGE_S - 3:
        assert dead.count() == 0
        time.sleep(1)
    assert emulator_admin.contacts() == {}
    for email in expected_state(events):
        fields = redis_conn.hkeys(keys.contact(email))
        assert any(name.startswith((b"p:", b"f:")) for name in fields), email

    wait_until(lambda: dead.count() == 6, timeout_s=30, message="six retry_expired dead letters")
    letters = dead.list()
    assert {letter.reason for letter in letters} == {"retry_expired"}
    assert {letter.status for letter in letters} == {403}
    wait_until(lambda: drained(redis_conn, keys), timeout_s=10, message="nothing left scheduled")

    # The 403s' retries. (A 429 can slip in on a loaded machine, when arrival jitter beats the
    # limiter's margin; its retry follows Retry-After, is a warning, and is not checked here.)
    retries = worker.events_named("contact.sync_retry")
    delays = _retry_delays([line for line in retries if line["error"] == "ApiConfigError"])
    assert set(delays) == {letter.email for letter in letters}
    for email, series in delays.items():
        assert len(series) >= 6, (email, series)
        for attempt, delay in series:
            ceiling = min(CONFIG_CAP_S, CONFIG_BASE_S * 2 ** (attempt - 1))
            assert ceiling / 2 <= delay <= ceiling + 0.001, (email, attempt, delay)
        # Ceilings 0.5, 1, then 2 for good: from the third attempt on, the delays stop growing.
        assert max(delay for attempt, delay in series if attempt >= 3) <= CONFIG_CAP_S
        attempts = [a for a, _ in series]
        assert attempts == sorted(set(attempts)), attempts  # one count of failed attempts
    assert {line["level"] for line in retries if line["error"] == "ApiConfigError"} == {"error"}

    # The customer fixes the token; a newer change arrives; then the operator replays.
    emulator_admin.set_token(TOKEN)
    newer = [
        Event(
            100 + n, f"token{n}@example.com", T0 + dt.timedelta(days=1), {"firstName": f"new-{n}"}
        )
        for n in range(3)
    ]
    send_pipelined(producer, newer)
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    capsys.readouterr()
    replayed = time.monotonic()
    assert cli.main(["dead-letters", "replay", "--all", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out).values()) == {"replayed"}
    expected = expected_state([*events, *newer])
    wait_until(
        lambda: drained(redis_conn, keys) and stored_state(emulator_admin) == expected,
        timeout_s=40,
        message="exact state after the replay",
    )
    replay_s = time.monotonic() - replayed
    assert dead.count() == 0
    assert lost_events([*events, *newer], stored_state(emulator_admin)) == []
    audit = RequestAudit.of(emulator_admin.requests_log())
    print(
        f"\nbad token: {len(events) + len(newer)} events, {len(letters)} dead letters "
        f"replayed, attempts per email {sorted(len(s) for s in delays.values())}, "
        f"delivered {replay_s:.1f}s after the replay, "
        f"duplicates {audit.duplicates} (resending {audit.resending})"
    )
