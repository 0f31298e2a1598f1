"""Worker crashes (issue 3, scenarios 1 and 6): ``kill -9`` real Celery processes mid-run.

Each test ends by comparing every contact's final state in the emulator with the expected
last-write-wins state, and counting lost events (0) and duplicate requests. Recovery never
waits for Celery's visibility timeout (one hour): a lease ends ``timings.lease_s`` after its
sync began, entries a dead consumer read are reclaimed after ``reclaim_idle_s`` idle, and the
pump lock expires after 2 x the pump window. The harness sets short ones (12 s, 3 s and 2 s:
tests/integration/conftest.py), which worker/timings.py accepts for a 2 s HTTP timeout.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests._layout import readable_contact
from tests.integration._harness import TOKEN, WorkerPool, WorkerProcess, drained, wait_until
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
from worker.keys import CONSUMER_GROUP, Keys
from worker.settings import Settings
from worker.timings import Timings

SEED = 20261129
RATE_LIMIT = 100
ENV = {
    "CONTACT_SYNC_RATE_LIMIT": str(RATE_LIMIT),
    "CONTACT_SYNC_DEBOUNCE_S": "2",
}
# Starting a replacement worker and draining what is left, on a shared 2-core box.
SLACK_S = 30.0
CELERY_VISIBILITY_TIMEOUT_S = 3600  # kombu's Redis transport default; never waited for


@pytest.fixture
def emulator() -> Iterator[FakeActiveCampaign]:
    """The emulator at 100 requests/s (the workers get the same limit), so runs stay short."""
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=float(RATE_LIMIT)).start()
    yield server
    server.stop()


@pytest.fixture
def celery_control(redis_url: str, key_prefix: str) -> Iterator[Celery]:
    """A Celery client on the workers' broker, for ``inspect active``: which pool pid runs what."""
    app = Celery("crash-tests", broker=redis_url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": f"{key_prefix}:kombu:"}
    yield app
    app.close()


def timings_of(worker: WorkerProcess) -> Timings:
    return Settings.from_env(worker.env).timings


@dataclass(frozen=True)
class ActiveSync:
    email: str
    lease: str
    pid: int
    started_at: float  # epoch seconds, by this host's clock (the pool child's)


def _active_syncs(control: Celery, worker: WorkerProcess) -> list[ActiveSync]:
    hostname = f"{worker.name}@localhost"
    reply = control.control.inspect(destination=[hostname], timeout=2.0, limit=1).active() or {}
    syncs = []
    for task in reply.get(hostname, []):
        start = task.get("time_start")
        if not start:
            continue
        if task["name"] == "contact_sync.sync_contact":
            pairs = [(task["args"][0], task["kwargs"].get("lease", ""))]
        elif task["name"] == "contact_sync.sync_contacts":  # several emails a task, from 100/s
            pairs = list(zip(task["args"][0], task["args"][1], strict=True))
        else:
            continue
        syncs += [ActiveSync(email, lease, task["worker_pid"], start) for email, lease in pairs]
    return syncs


def _wait_exact(
    events: list[Event],
    admin: EmulatorClient,
    client: redis.Redis,
    keys: Keys,
    *,
    timeout_s: float,
) -> float:
    """Wait until Redis is drained and the emulator holds the expected state; monotonic time."""
    expected = expected_state(events)
    wait_until(
        lambda: drained(client, keys) and stored_state(admin) == expected,
        timeout_s=timeout_s,
        interval_s=0.25,
        message="drained and exact final state",
    )
    return time.monotonic()


def _check_final_state(
    events: list[Event], admin: EmulatorClient, client: redis.Redis, keys: Keys
) -> RequestAudit:
    """Exact LWW state, 0 lost, every entry merged once, nothing dead or pending; the audit."""
    stored = stored_state(admin)
    assert stored == expected_state(events)
    assert lost_events(events, stored) == []
    stats = {k.decode(): int(v) for k, v in client.hgetall(keys.stats).items()}
    assert stats.get("events_ingested") == len(events)
    assert stats.get("dead_lettered", 0) == 0
    assert client.xlen(keys.dead) == 0
    assert client.xpending(keys.events, CONSUMER_GROUP)["pending"] == 0
    return RequestAudit.of(admin.requests_log())


def _mid_sync(client: redis.Redis, keys: Keys) -> tuple[int, set[tuple[str, bytes]]]:
    """Leases held right after a kill, and the (email, lease) of those that had begun sending."""
    leased = [email.decode() for email in client.zrange(keys.leases, 0, -1)]
    pipe = client.pipeline(transaction=False)
    for email in leased:
        pipe.hget(keys.contact(email), "m:begun")
    return len(leased), {
        (email, token) for email, token in zip(leased, pipe.execute(), strict=True) if token
    }


def _send_over(
    producer: ContactSyncProducer, events: list[Event], *, batches: int, interval_s: float
) -> None:
    size = -(-len(events) // batches)
    for start in range(0, len(events), size):
        send_pipelined(producer, events[start : start + size])
        time.sleep(interval_s)


@pytest.mark.slow
def test_main_process_killed_three_times_mid_run_loses_nothing(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """kill -9 of the worker's main process at 3 seeded random moments during 5,000 events for 500 emails: its pool children die with it, nothing is lost, the state is exact, and recovery takes less than lease + reclaim idle time."""
    rng = random.Random(SEED)
    events = make_events(rng, count=5000, emails=500)
    # Requests take a while, so a kill can catch one in flight.
    emulator_admin.set_faults(latency_ms=100)
    (worker,) = workers.start(1, concurrency=4, **ENV)
    timings = timings_of(worker)
    lease_s = timings.lease_s
    bound_s = lease_s + timings.reclaim_idle_s + SLACK_S
    sender = threading.Thread(
        target=_send_over, args=(producer, events), kwargs={"batches": 20, "interval_s": 0.5}
    )
    started = time.monotonic()
    sender.start()
    kills: list[dict[str, Any]] = []
    interrupted: set[tuple[str, bytes]] = set()
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 4.0))
        survivors = worker.kill_main()
        killed_at = time.monotonic()
        assert survivors == [], f"pool children outlived their killed main process: {survivors}"
        leases, begun = _mid_sync(redis_conn, keys)
        kills.append(
            {"at_s": round(killed_at - started, 1), "leases": leases, "mid_sync": len(begun)}
        )
        interrupted |= begun
        (worker,) = workers.start(1, concurrency=4, **ENV)
    sender.join()

    done_at = _wait_exact(events, emulator_admin, redis_conn, keys, timeout_s=bound_s)
    recovery_s = done_at - killed_at

    audit = _check_final_state(events, emulator_admin, redis_conn, keys)
    reports = [line for line in workers.all_log_lines() if line.get("event") == "pump.report"]
    expired = sum(line["expired_leases"] for line in reports)
    reclaimed = sum(line["reclaimed"] for line in reports)
    print(
        f"\n[scenario 1, main process] events={len(events)} emails=500 kills={kills} "
        f"interrupted={len(interrupted)} expired_leases>={expired} reclaimed>={reclaimed} "
        f"accepted={audit.accepted} duplicates={audit.duplicates} resending={audit.resending} "
        f"other={audit.other_status} lost=0 dead=0 recovery_s={recovery_s:.1f} "
        f"bound_s={bound_s:.0f} total_s={done_at - started:.1f}"
    )
    assert recovery_s < bound_s < CELERY_VISIBILITY_TIMEOUT_S
    # Every re-sent value comes from a sync that a kill interrupted after it began sending.
    assert audit.duplicates <= audit.resending <= len(interrupted)


@pytest.mark.slow
def test_entries_read_by_a_dead_pump_are_reclaimed_after_the_idle_time(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """Stream entries a pump read but never acknowledged (it died before ingesting them) are taken over after reclaim_idle_s idle and merged exactly once: the state is exact."""
    rng = random.Random(SEED + 3)
    events = make_events(rng, count=200, emails=20)
    redis_conn.xgroup_create(keys.events, CONSUMER_GROUP, id="0", mkstream=True)
    send_pipelined(producer, events)
    # The dead pump: it read every entry under its own consumer name, then vanished. (A kill
    # cannot reliably land between a pump's XREADGROUP and its ingest, which run back to back.)
    ((_, entries),) = redis_conn.xreadgroup(
        CONSUMER_GROUP, "dead-host:4242", {keys.events: ">"}, count=len(events)
    )
    read_at = time.monotonic()
    assert len(entries) == len(events)
    (worker,) = workers.start(1, **ENV)
    reclaim_idle_s = timings_of(worker).reclaim_idle_s
    bound_s = reclaim_idle_s + timings_of(worker).reclaim_every_s + SLACK_S

    done_at = _wait_exact(events, emulator_admin, redis_conn, keys, timeout_s=bound_s)
    recovery_s = done_at - read_at

    audit = _check_final_state(events, emulator_admin, redis_conn, keys)
    print(
        f"\n[scenario 1, dead pump] events={len(events)} emails=20 accepted={audit.accepted} "
        f"duplicates={audit.duplicates} lost=0 dead=0 recovery_s={recovery_s:.1f} "
        f"reclaim_idle_s={reclaim_idle_s:.0f}"
    )
    assert audit.duplicates == 0
    assert reclaim_idle_s <= recovery_s < bound_s < CELERY_VISIBILITY_TIMEOUT_S


def _mid_request(control: Celery, worker: WorkerProcess, latency_s: float) -> ActiveSync | None:
    """An active sync whose request has left and is well within the emulator's latency."""
    now = time.time()
    for sync in _active_syncs(control, worker):
        if 0.2 < now - sync.started_at < latency_s - 0.4:
            return sync
    return None


@pytest.mark.slow
def test_pool_child_killed_mid_request_loses_nothing(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    celery_control: Celery,
) -> None:
    """kill -9 of the pool child whose request is in flight: Celery replaces the child, the email is sent again only after its lease ends (never two requests at once), and the state is exact."""
    rng = random.Random(SEED + 1)
    events = make_events(rng, count=500, emails=50)
    latency_s = 1.0
    emulator_admin.set_faults(latency_ms=latency_s * 1000)
    (worker,) = workers.start(1, concurrency=3, **ENV)
    lease_s = timings_of(worker).lease_s
    pool_before = worker.pool_pids()
    send_pipelined(producer, events)

    victim: ActiveSync = wait_until(
        lambda: _mid_request(celery_control, worker, latency_s),
        timeout_s=30,
        interval_s=0.05,
        message="a sync with its request in flight",
    )
    os.kill(victim.pid, signal.SIGKILL)
    killed_epoch, killed_at = time.time(), time.monotonic()

    done_at = _wait_exact(events, emulator_admin, redis_conn, keys, timeout_s=lease_s + SLACK_S)
    recovery_s = done_at - killed_at

    audit = _check_final_state(events, emulator_admin, redis_conn, keys)
    sent = [
        entry
        for entry in emulator_admin.requests_log()
        if entry["path"] == SYNC_PATH and entry["email"] == victim.email
    ]
    # The killed child's request had arrived and was still being answered when it died.
    assert any(entry["t"] <= killed_epoch < entry["t"] + latency_s for entry in sent)
    # The same email was not sent again until the lease that child held had run out.
    resent = [entry for entry in sent if entry["t"] > killed_epoch]
    assert resent, "the killed child's change was never sent again"
    assert resent[0]["t"] >= victim.started_at + lease_s - 1.0
    assert emulator_admin.stats()["max_in_flight_per_email"] == 1
    # Only the child died: the main process lives and put a new child in its place.
    assert worker.process is not None
    assert worker.process.poll() is None
    pool_after = worker.pool_pids()
    assert victim.pid in pool_before
    assert victim.pid not in pool_after
    assert len(pool_after) == len(pool_before)
    print(
        f"\n[scenario 1, pool child] events={len(events)} emails=50 latency_ms=1000 "
        f"accepted={audit.accepted} duplicates={audit.duplicates} resending={audit.resending} "
        f"other={audit.other_status} lost=0 dead=0 recovery_s={recovery_s:.1f} "
        f"resent_after_kill_s={resent[0]['t'] - killed_epoch:.1f} lease_s={lease_s:.0f}"
    )
    assert audit.duplicates <= 1
    assert recovery_s < lease_s + SLACK_S < CELERY_VISIBILITY_TIMEOUT_S


@pytest.mark.slow
def test_crash_after_the_api_accepted_sends_again_and_ends_exact(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    celery_control: Celery,
) -> None:
    """A pool child killed after the API stored its change (201) but before finish_sync recorded it: the next claim sends it again once, and the state is exact."""
    rng = random.Random(SEED + 2)
    events = make_events(rng, count=200, emails=20)
    (worker,) = workers.start(1, concurrency=3, **ENV)
    lease_s = timings_of(worker).lease_s
    send_pipelined(producer, events)
    _wait_exact(events, emulator_admin, redis_conn, keys, timeout_s=60)
    assert RequestAudit.of(emulator_admin.requests_log()).duplicates == 0

    email = events[0].email
    value = "accepted-then-crashed"
    change = Event(len(events), email, T0 + dt.timedelta(hours=1), {"firstName": value})
    # The emulator stores the contact and logs 201, then holds the answer for 1.5 s (less
    # than the 2 s client timeout): the worker is killed while waiting for it.
    emulator_admin.set_faults(delay_after_store_ms=1500)
    change.send(producer)
    wait_until(
        lambda: any(
            entry["email"] == email and entry["status"] == 201 and entry["body"] == _body(change)
            for entry in emulator_admin.requests_log()
        ),
        timeout_s=30,
        interval_s=0.02,
        message="the API accepted the change",
    )
    (victim,) = [sync for sync in _active_syncs(celery_control, worker) if sync.email == email]
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    emulator_admin.clear_faults()
    # Accepted by the API, yet still in flight in Redis: finish_sync never ran.
    contact = readable_contact(redis_conn.hgetall(keys.contact(email)), email)
    assert contact.get("f:firstName") == value
    assert redis_conn.hget(keys.lease_tokens, email) == victim.lease.encode()
    assert emulator_admin.contacts()[email]["firstName"] == value

    all_events = [*events, change]
    done_at = _wait_exact(all_events, emulator_admin, redis_conn, keys, timeout_s=lease_s + SLACK_S)
    recovery_s = done_at - killed_at

    audit = _check_final_state(all_events, emulator_admin, redis_conn, keys)
    sends = [
        entry
        for entry in emulator_admin.requests_log()
        if entry["email"] == email and entry["body"] == _body(change)
    ]
    print(
        f"\n[scenario 6] events={len(all_events)} emails=20 accepted={audit.accepted} "
        f"duplicates={audit.duplicates} other={audit.other_status} lost=0 dead=0 "
        f"recovery_s={recovery_s:.1f} lease_s={lease_s:.0f}"
    )
    assert [entry["status"] for entry in sends] == [201, 201]
    assert sends[1]["t"] >= victim.started_at + lease_s - 1.0
    assert (audit.duplicates, audit.duplicate_emails) == (1, [email])
    assert recovery_s < lease_s + SLACK_S < CELERY_VISIBILITY_TIMEOUT_S


def _body(event: Event) -> dict[str, Any]:
    return {"contact": event.contact()}
