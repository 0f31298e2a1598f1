"""Redis Sentinel failover (issue 12): the master is killed mid-run and everything follows.

A master, one replica and three sentinels, each a process of this test's own on a free port
of 127.0.0.1 (``tests/_redis_server.py``; a sentinel is ``redis-sentinel`` when that is on
PATH, else ``redis-server --sentinel``), with 1 s failure detection. Workers, producer and
checks are all given the one ``sentinel://`` URL. A producer thread sends a steady stream
with ``CONTACT_SYNC_PRODUCER_MIN_REPLICAS=1``; mid-run the master gets ``kill -9``, and once
the sentinels have promoted the replica, the killed server is started again, as a
supervisor would, and the sentinels make it the new master's replica.

One replica, not two: ``WAIT 1`` then means "the one replica that can be promoted has it".
With two, Sentinel may promote the replica that did not acknowledge an event, and the run
that used two lost 6 acknowledged events once (docs/sentinel.md). The price is shown in the
figures: after the promotion the new master has no replica, so every event is refused
(``WAIT`` times out) until the old server is back as its replica.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer, EnqueueError
from tests._redis_server import SentinelCluster, redis_required
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
from worker.keys import Keys
from worker.redis_client import connect
from worker.settings import Settings

SEED = 20261212
RATE_LIMIT = 100
ENV = {"CONTACT_SYNC_RATE_LIMIT": str(RATE_LIMIT), "CONTACT_SYNC_DEBOUNCE_S": "0.5"}
EVENTS, EMAILS = 1200, 200
PACE_S = 0.01  # between two calls of the producer thread
KILL_AFTER_ACKNOWLEDGED = 300
SLACK_S = 30.0


@pytest.fixture
def cluster() -> Iterator[SentinelCluster]:
    """A master, one replica and three sentinels, private to this test."""
    try:
        started = SentinelCluster(replicas=1, sentinels=3, down_after_ms=1000).start()
    except RuntimeError as exc:
        if redis_required():
            pytest.fail(f"Redis and Sentinel are required in CI: {exc}")
        pytest.skip(f"cannot run a Sentinel deployment here: {exc}")
    yield started
    started.stop()


@pytest.fixture
def redis_url(cluster: SentinelCluster) -> str:
    """The sentinel:// URL: conftest's worker_env hands it to the workers as CONTACT_SYNC_REDIS_URL."""
    return cluster.url


@pytest.fixture
def key_prefix() -> str:
    """A prefix of its own (the deployment is thrown away with the test)."""
    return f"cs-failover-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def emulator() -> Iterator[FakeActiveCampaign]:
    """The emulator at 100 requests/s (the workers get the same limit), so the run stays short."""
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=float(RATE_LIMIT)).start()
    yield server
    server.stop()


@dataclass
class Stream:
    """What each call of the producer thread did, with when (monotonic) it ended."""

    returned: list[tuple[float, Event]] = field(default_factory=list)
    refused: list[tuple[float, Event, EnqueueError]] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    slowest_s: float = 0.0

    def send_all(self, producer: ContactSyncProducer, events: list[Event]) -> None:
        for event in events:
            started = time.monotonic()
            try:
                event.send(producer)
            except EnqueueError as exc:
                self.refused.append((time.monotonic(), event, exc))
            except BaseException as exc:  # anything else is a finding, kept for the test
                self.unexpected.append(exc)
            else:
                self.returned.append((time.monotonic(), event))
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            time.sleep(PACE_S)


def _no_master(error: EnqueueError) -> bool:
    """The call failed to reach a master (as opposed to a WAIT that fell short)."""
    return isinstance(error.__cause__, redis.ConnectionError)


def _sent_values(log: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (str(entry["email"]).lower(), name, value)
        for entry in log
        if entry["path"] == SYNC_PATH
        for name, value in request_attributes(entry["body"]).items()
    }


def _history(
    lost: list[Event],
    events: list[Event],
    stored: dict[str, dict[str, str]],
    log: list[dict[str, Any]],
    killed_epoch: float,
) -> str:
    """For each lost event's email: what was expected, what is stored, and every request
    for it (time from the kill, status, attributes), to tell where the value went."""
    lines = []
    for event in lost:
        expected = expected_state(e for e in events if e.email == event.email)[event.email]
        lines.append(f"{event.email}: expected {expected}, stored {stored.get(event.email)}")
        for entry in log:
            if str(entry.get("email", "")).lower() == event.email:
                lines.append(
                    f"  {entry['t'] - killed_epoch:+.2f} s {entry['path']} {entry['status']} "
                    f"{request_attributes(entry['body'])}"
                )
    return "\n".join(lines)


def _sync_gap(log: list[dict[str, Any]], killed_at: float) -> tuple[float, float]:
    """The workers' outage: the last sync request before it and the first after, in seconds
    from the kill (the longest pause between two requests from a second before the kill)."""
    times = sorted(
        entry["t"] for entry in log if entry["path"] == SYNC_PATH and entry["t"] >= killed_at - 1
    )
    if len(times) < 2:
        return 0.0, 0.0
    before, after = max(itertools.pairwise(times), key=lambda pair: pair[1] - pair[0])
    return before - killed_at, after - killed_at


@pytest.mark.slow
def test_master_killed_mid_run_loses_no_acknowledged_event(
    cluster: SentinelCluster,
    workers: WorkerPool,
    worker_env: dict[str, str],
    key_prefix: str,
    keys: Keys,
    emulator_admin: EmulatorClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kill -9 of the Sentinel-managed master mid-run: producers (MIN_REPLICAS=1) and workers follow the new master without a restart, and every event whose send returned reaches the emulator with the exact last-write-wins state."""
    assert worker_env["CONTACT_SYNC_REDIS_URL"] == cluster.url
    events = make_events(random.Random(SEED), count=EVENTS, emails=EMAILS)
    first, second = workers.start(2, concurrency=2, **ENV)
    pids = {first.pid, second.pid}
    lease_s = Settings.from_env(first.env).timings.lease_s

    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", cluster.url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "1")
    producer = ContactSyncProducer.from_env(source="tests:failover")
    assert producer.min_replicas == 1
    stream = Stream()
    thread = threading.Thread(target=stream.send_all, args=(producer, events))
    thread.start()

    wait_until(
        lambda: len(stream.returned) >= KILL_AFTER_ACKNOWLEDGED and emulator_admin.requests_log(),
        timeout_s=30,
        message="a steady stream that workers sync",
    )
    old_master = cluster.master_port()
    assert old_master is not None
    killed_at, killed_epoch = time.monotonic(), time.time()
    old_server = cluster.server_on(old_master)
    old_server.kill()
    wait_until(
        lambda: cluster.master_port() not in (None, old_master),
        timeout_s=30,
        interval_s=0.1,
        message="the sentinels promote the replica",
    )
    promoted_at = time.monotonic()
    old_server.start()  # empty (no persistence here): it comes back only as a replica
    wait_until(
        lambda: cluster.replica_count() >= 1,
        timeout_s=30,
        interval_s=0.1,
        message="the old server back as the new master's replica",
    )
    replica_back_at = time.monotonic()
    thread.join()
    producer.close()
    new_master = cluster.master_port()

    assert stream.unexpected == []
    assert new_master not in (None, old_master), "the sentinels promoted no replica"
    assert stream.refused, "no send failed although the master was killed"
    assert all(at >= killed_at for at, _, _ in stream.refused), "a send failed before the kill"
    recovered_at = min((at for at, _ in stream.returned if at > killed_at), default=None)
    assert recovered_at is not None, "no send succeeded after the failover"
    # Once a send succeeded on the new master, none failed to find a master a few seconds
    # later. (Right after it, a sentinel that has not yet heard of the promotion can still
    # name the dead master to a new connection: seen once under a loaded suite.)
    settled_at = recovered_at + 3.0
    assert not [e for at, _, e in stream.refused if at > settled_at and _no_master(e)]

    client = connect(cluster.url)
    try:
        wait_until(
            lambda: drained(client, keys),
            timeout_s=lease_s + SLACK_S,
            interval_s=0.25,
            message="every event processed after the failover",
        )
        drained_at = time.monotonic()
        log = emulator_admin.requests_log()
        # A refused send may still have been written (a WAIT that fell short, or a reply lost
        # with the master): its unique values then show up in a request, and it counts.
        sent = _sent_values(log)
        written_anyway = [
            event
            for _, event, _ in stream.refused
            if any((event.email, name, value) in sent for name, value in event.values.items())
        ]
        acknowledged = [event for _, event in stream.returned]
        expected = expected_state(acknowledged + written_anyway)
        stored = stored_state(emulator_admin)
        lost = lost_events(acknowledged, stored, also_written=written_anyway)
        assert lost == [], f"{len(lost)} acknowledged events lost, e.g. {lost[:3]}\n" + _history(
            lost[:3], acknowledged + written_anyway, stored, log, killed_epoch
        )
        assert stored == expected
        assert client.xlen(keys.dead) == 0
    finally:
        client.close()

    # The same worker processes did the work after the failover: nobody restarted them.
    assert {worker.pid for worker in workers.workers} == pids
    for worker in workers.workers:
        assert worker.process is not None
        assert worker.process.poll() is None
        assert "Unrecoverable error" not in worker.output()
    after_kill = [e for at, e in stream.returned if at > killed_at]
    post_kill_values = {(e.email, n, v) for e in after_kill for n, v in e.values.items()}
    first_new_sync = min(
        (
            entry["t"]
            for entry in log
            if entry["path"] == SYNC_PATH
            and any(
                (str(entry["email"]).lower(), name, value) in post_kill_values
                for name, value in request_attributes(entry["body"]).items()
            )
        ),
        default=None,
    )
    assert first_new_sync is not None, "no event sent after the failover was synced"
    last_before, first_after = _sync_gap(log, killed_epoch)
    audit = RequestAudit.of(log)
    no_master = sum(1 for _, _, e in stream.refused if _no_master(e))
    print(
        f"\n[sentinel failover, MIN_REPLICAS=1] events={len(events)} "
        f"acknowledged={len(acknowledged)} enqueue_errors={len(stream.refused)} "
        f"(no_master={no_master} wait_short={len(stream.refused) - no_master}) "
        f"refused_but_written={len(written_anyway)} lost={len(lost)} "
        f"duplicate_requests={audit.duplicates} resending={audit.resending} "
        f"other_status={audit.other_status}\n"
        f"  sentinels: replica promoted {promoted_at - killed_at:.2f} s after the kill; "
        f"the old server back as its replica {replica_back_at - killed_at:.2f} s after it\n"
        f"  producers: first error {min(at for at, _, _ in stream.refused) - killed_at:.2f} s "
        f"after the kill, first success after it {recovered_at - killed_at:.2f} s "
        f"(failover seen by producers "
        f"{recovered_at - min(at for at, _, _ in stream.refused):.2f} s), "
        f"slowest call {stream.slowest_s:.2f} s\n"
        f"  workers: last sync before {last_before:+.2f} s, first after {first_after:+.2f} s "
        f"(gap {first_after - last_before:.2f} s); first sync of an event sent after the kill "
        f"{first_new_sync - killed_epoch:.2f} s after it; drained "
        f"{drained_at - killed_at:.1f} s after the kill"
    )
