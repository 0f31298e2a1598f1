"""Redis restart (issue 3, scenario 2): a redis-server owned by the test goes away mid-run.

The server runs with ``appendonly yes`` in a directory and on a port of its own. Mid-run it
is stopped (``SHUTDOWN`` by SIGTERM, or ``kill -9``) and started again on the same port with
the same files, while producers keep writing and one worker keeps running.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer, EnqueueError
from tests._redis_server import RedisServer, redis_required
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from tests.integration._lww import (
    SYNC_PATH,
    Event,
    RequestAudit,
    expected_state,
    lost_events,
    make_events,
    request_attributes,
    stored_state,
)
from worker.keys import CONSUMER_GROUP, Keys
from worker.settings import Settings

SEED = 20261130
RATE_LIMIT = 100
ENV = {
    "CONTACT_SYNC_RATE_LIMIT": str(RATE_LIMIT),
    "CONTACT_SYNC_HTTP_TIMEOUT_S": "2",
    "CONTACT_SYNC_DEBOUNCE_S": "1",
}
PRODUCER_THREADS = 3
PACE_S = 0.025  # between one thread's calls: 3,000 events take about 25 s
DOWN_AFTER_S = 6.0
OUTAGE_S = 8.0
SLACK_S = 30.0


@dataclass(frozen=True)
class Stop:
    """How the test stops Redis, and the AOF fsync policy it runs with."""

    signal: str  # "SIGTERM": SHUTDOWN, which writes and fsyncs the AOF; "SIGKILL": kill -9
    appendfsync: str


STOPS = [Stop("SIGTERM", "everysec"), Stop("SIGKILL", "always")]


@pytest.fixture
def own_redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A redis-server of this test's own, with an append-only file, that it may stop."""
    stop: Stop = request.param
    try:
        server = RedisServer(
            appendonly=True, extra_args=("--appendfsync", stop.appendfsync)
        ).start()
    except RuntimeError as exc:
        if redis_required():
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"no redis-server available: {exc}")
    yield server
    server.stop()


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    """Workers, producers and checks all use the test's own server."""
    return own_redis.url


@pytest.fixture
def emulator() -> Iterator[FakeActiveCampaign]:
    """The emulator at 100 requests/s (the workers get the same limit), so runs stay short."""
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=float(RATE_LIMIT)).start()
    yield server
    server.stop()


@dataclass
class ProducerCalls:
    """What every producer call did: returned an id, or raised EnqueueError (or else)."""

    returned: list[Event] = field(default_factory=list)
    refused: list[tuple[float, Event]] = field(default_factory=list)  # (monotonic, event)
    unexpected: list[BaseException] = field(default_factory=list)
    slowest_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_all(self, producer: ContactSyncProducer, events: list[Event]) -> None:
        for event in events:
            started = time.monotonic()
            try:
                event.send(producer)
            except EnqueueError:
                with self.lock:
                    self.refused.append((time.monotonic(), event))
            except BaseException as exc:  # anything else is a finding, recorded for the test
                with self.lock:
                    self.unexpected.append(exc)
            else:
                with self.lock:
                    self.returned.append(event)
            with self.lock:
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            time.sleep(PACE_S)


def _sent_values(log: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (str(entry["email"]).lower(), name, value)
        for entry in log
        if entry["path"] == SYNC_PATH
        for name, value in request_attributes(entry["body"]).items()
    }


def _diagnosis(client: redis.Redis, keys: Keys, expected: Any, stored: Any) -> str:
    differing = sorted(
        email
        for email in expected.keys() | stored.keys()
        if expected.get(email) != stored.get(email)
    )
    return (
        f"stream={client.xlen(keys.events)} due={client.zcard(keys.due)} "
        f"leases={client.zcard(keys.leases)} differing emails={len(differing)}: "
        + "; ".join(f"{e} want={expected.get(e)} got={stored.get(e)}" for e in differing[:3])
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "own_redis", STOPS, indirect=True, ids=[f"{s.signal}-{s.appendfsync}" for s in STOPS]
)
@pytest.mark.slow
def test_redis_restart_mid_run_loses_no_acknowledged_event(
    own_redis: RedisServer,
    workers: WorkerPool,
    redis_url: str,
    key_prefix: str,
    emulator_admin: EmulatorClient,
    keys: Keys,
    request: pytest.FixtureRequest,
) -> None:
    """Redis stopped for 8 s mid-run (SHUTDOWN with appendfsync everysec, or kill -9 with always) and restarted on the same port and files: every event whose XADD returned ends in the exact final state, producers get EnqueueError meanwhile, and the same worker process finishes the work."""
    stop: Stop = request.node.callspec.params["own_redis"]
    rng = random.Random(SEED)
    events = make_events(rng, count=3000, emails=300)
    emulator_admin.set_faults(latency_ms=20)
    (worker,) = workers.start(1, concurrency=3, **ENV)
    lease_s = Settings.from_env(worker.env).timings.lease_s
    main_pid, pool_before = worker.pid, sorted(worker.pool_pids())

    calls = ProducerCalls()
    producers = [
        ContactSyncProducer(redis_url, key_prefix, source=f"tests-{n}")
        for n in range(PRODUCER_THREADS)
    ]
    threads = [
        threading.Thread(target=calls.send_all, args=(each, events[n::PRODUCER_THREADS]))
        for n, each in enumerate(producers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(DOWN_AFTER_S)
    down_at = time.monotonic()
    if stop.signal == "SIGKILL":
        own_redis.kill()
    else:
        own_redis.stop(keep_files=True)  # SIGTERM: Redis writes and fsyncs the AOF, then exits
    time.sleep(OUTAGE_S)
    own_redis.start()  # same port, same directory: the AOF is loaded
    up_at, up_epoch = time.monotonic(), time.time()
    for thread in threads:
        thread.join()
    for each in producers:
        each.close()

    assert calls.unexpected == []
    assert calls.refused, "no producer call failed while Redis was down"
    assert all(down_at <= at for at, _ in calls.refused), "a call failed before the outage"
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(
            lambda: drained(client, keys),
            timeout_s=lease_s + SLACK_S,
            interval_s=0.25,
            message="every event processed after the restart",
        )
        done_at = time.monotonic()
        # A refused call may still have been written (its reply was lost): such an event shows
        # up in a request, so it is counted in. Every event whose call returned must be there.
        sent = _sent_values(emulator_admin.requests_log())
        written_anyway = [
            event
            for _, event in calls.refused
            if any((event.email, name, value) in sent for name, value in event.values.items())
        ]
        acknowledged = calls.returned + written_anyway
        expected = expected_state(acknowledged)
        stored = stored_state(emulator_admin)
        assert stored == expected, _diagnosis(client, keys, expected, stored)
        assert lost_events(acknowledged, stored) == []
        assert client.xpending(keys.events, CONSUMER_GROUP)["pending"] == 0
        assert client.xlen(keys.dead) == 0
        ingested = int(client.hget(keys.stats, "events_ingested") or 0)
        assert ingested >= len(calls.returned)
    finally:
        client.close()

    # The worker was never restarted: the same main process did the work after the outage.
    log = emulator_admin.requests_log()
    assert worker.process is not None
    assert worker.process.poll() is None
    assert worker.pid == main_pid
    assert "Unrecoverable error" not in worker.output()
    assert any(entry["t"] > up_epoch for entry in log if entry["path"] == SYNC_PATH)
    audit = RequestAudit.of(log)
    print(
        f"\n[scenario 2, {stop.signal} appendfsync={stop.appendfsync}] events={len(events)} "
        f"returned={len(calls.returned)} refused={len(calls.refused)} "
        f"refused_but_ingested={ingested - len(calls.returned)} "
        f"of_them_visible={len(written_anyway)} "
        f"slowest_call_s={calls.slowest_s:.2f} outage_s={up_at - down_at:.1f} "
        f"accepted={audit.accepted} duplicates={audit.duplicates} resending={audit.resending} "
        f"other={audit.other_status} lost=0 dead=0 recovery_s={done_at - up_at:.1f} "
        f"pool_before={pool_before} pool_after={sorted(worker.pool_pids())}"
    )
