"""Bounded memory: after 100,000 events and a full drain, Redis holds only bounded keys."""

from __future__ import annotations

import collections
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from tests.integration._lww import (
    RequestAudit,
    expected_state,
    make_events,
    send_pipelined,
    stored_state,
)
from worker.keys import CONSUMER_GROUP, Keys

# 20 events per email: 10,000 emails would take the drain past two minutes on 2 cores.
EVENTS, EMAILS = 100_000, 5_000
# Requests/s for the workers' limiter (the emulator has no limit here). Not higher: the pump
# leases 2 s of budget at a time, and its next run queues behind those sync tasks.
RATE = 150
CONFIRMED_TTL_S = 3
# What an idle contact's hash may hold once synced: confirmed values (each with the stamp
# of its event) and "ActiveCampaign knows it".
CONFIRMED_FIELDS = ("c:", "m:known")
PENDING_FIELDS = ("p:", "m:n")


@pytest.fixture
def emulator() -> Iterator[FakeActiveCampaign]:
    """The API without its own limit: the workers' limiter (RATE/s) paces the drain."""
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=0).start()
    yield server
    server.stop()


@dataclass
class MemorySamples:
    """MEMORY USAGE of contact hashes, by the state their fields show."""

    pending: dict[bytes, int] = field(default_factory=dict)
    confirmed: dict[bytes, int] = field(default_factory=dict)
    confirmed_ttls_ms: list[int] = field(default_factory=list)
    other: dict[bytes, list[str]] = field(default_factory=dict)  # claimed or in flight

    def sample(self, client: redis.Redis, keys: Keys, *, limit: int) -> collections.Counter[str]:
        """Classify up to ``limit`` contact hashes not yet sampled as confirmed; count each class."""
        classes: collections.Counter[str] = collections.Counter()
        names = []
        for name in client.scan_iter(match=keys.contact("*"), count=1000):
            if name not in self.confirmed:
                names.append(name)
            if len(names) >= limit:
                break
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hkeys(name).pttl(name).memory_usage(name, samples=0)
        replies = pipe.execute()
        for n, name in enumerate(names):
            fields, ttl_ms, usage = replies[3 * n : 3 * n + 3]
            texts = [f.decode() for f in fields]
            if not texts or usage is None:
                continue  # expired between SCAN and the pipeline
            if ttl_ms == -1 and all(t.startswith(PENDING_FIELDS) for t in texts):
                self.pending[name] = usage
                classes["pending"] += 1
            elif ttl_ms > 0 and all(t.startswith(CONFIRMED_FIELDS) for t in texts):
                self.confirmed[name] = usage
                self.confirmed_ttls_ms.append(ttl_ms)
                classes["confirmed"] += 1
            else:
                self.other[name] = texts  # claimed or in flight right now
                classes["other"] += 1
        return classes


def _prefix_keys(client: redis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Every key under the prefix except contact hashes: type, TTL and size."""
    found = {}
    for raw in client.scan_iter(match=keys.all_keys_pattern(), count=1000):
        name = raw.decode()
        if name.startswith(keys.contact("")):
            continue
        kind = client.type(raw).decode()
        size = {
            "stream": client.xlen,
            "hash": client.hlen,
            "zset": client.zcard,
            "list": client.llen,
            "set": client.scard,
        }.get(kind, lambda _: 1)(raw)
        found[name[len(keys.prefix) + 1 :]] = {"type": kind, "ttl": client.ttl(raw), "size": size}
    return found


# Keys that may stay after a full drain, with why they are bounded (see docs/reliability.md).
BOUNDED = {
    "events": "the stream itself: XLEN 0, one consumer group; pruned consumers",
    "stats": "fixed set of counters",
    "claims": "one counter (part of every lease token)",
    "lease-tokens": "one token per email under lease: at most the rate budget's leases",
    "catalog:fields": "the account's custom fields, replaced whole at each read",
    "catalog:fields:fresh": "one flag, expires 60 s after the catalog was read",
    "metrics": "fixed set of histogram buckets and totals",
    "dead": "dead letters, bounded by DEAD_LETTER_MAX_COUNT and _MAX_AGE_S (none here)",
    "ratelimit:log": "at most RATE entries, expires after two windows",
    "ratelimit:pause": "one number, expires with the pause",
    "pump:lock": "one token, TTL 2 x the pump window, held by the running pump",
    "kombu:_kombu.binding.contact-sync": "Celery's queue binding, one member",
    "kombu:_kombu.binding.celery.pidbox": "Celery's remote-control binding, one per worker",
    "kombu:_kombu.binding.celeryev": "Celery's event binding, one per worker",
    "kombu:_kombu.binding_permanent.contact-sync": "kombu 5.7's durable binding, one member",
    "kombu:_kombu.binding_deadlines": "kombu 5.7's binding expiry times, one per binding",
    "kombu:unacked": "messages being run now (late ack): at most the pool size",
    "kombu:unacked_index": "the same messages' delivery times",
    "kombu:unacked_mutex": "kombu's restore lock, with a TTL",
    "kombu:contact-sync": "the task queue, empty once drained",
}


@pytest.mark.slow
def test_hundred_thousand_events_leave_no_orphan_keys_and_confirmed_state_expires(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """100,000 events for 5,000 emails: after the drain nothing pending, in flight or leased remains, contacts hold only confirmed fields, and those expire after the TTL."""
    started = time.monotonic()
    events = make_events(random.Random(8), count=EVENTS, emails=EMAILS, prefix="mem")
    memory_before = redis_conn.info("memory")["used_memory"]
    # In occurred_at order: with a 3 s TTL, an older event that arrives after its contact's
    # confirmed state expired is no longer known to be old and wins (docs/decisions.md).
    send_pipelined(producer, sorted(events, key=lambda event: event.occurred_at))
    produced_s = time.monotonic() - started

    samples = MemorySamples()
    workers.start(
        1,
        concurrency=4,
        CONTACT_SYNC_DEBOUNCE_S="20",
        CONTACT_SYNC_RATE_LIMIT=str(RATE),
        CONTACT_SYNC_CONFIRMED_TTL_S=str(CONFIRMED_TTL_S),
    )
    wait_until(
        lambda: (
            redis_conn.xlen(keys.events) == 0
            and int(redis_conn.hget(keys.stats, "events_ingested") or 0) == EVENTS
        ),
        timeout_s=120,
        interval_s=0.2,
        message="every event ingested",
    )
    ingested_s = time.monotonic() - started
    due = redis_conn.zcard(keys.due)
    pending_total_bytes = redis_conn.info("memory")["used_memory"] - memory_before
    due_bytes = redis_conn.memory_usage(keys.due, samples=0) or 0
    samples.sample(redis_conn, keys, limit=EMAILS)

    def drained_and_sampled() -> bool:
        samples.sample(redis_conn, keys, limit=500)
        return drained(redis_conn, keys)

    wait_until(drained_and_sampled, timeout_s=150, interval_s=0.5, message="a full drain")
    drained_s = time.monotonic() - started

    # Right after the drain: every contact hash left holds confirmed state and has a TTL.
    after_drain = samples.sample(redis_conn, keys, limit=EMAILS)
    assert set(after_drain) <= {"confirmed"}, after_drain
    assert stored_state(emulator_admin) == expected_state(events)
    assert redis_conn.xlen(keys.events) == 0
    assert redis_conn.xpending(keys.events, CONSUMER_GROUP)["pending"] == 0
    assert redis_conn.exists(keys.due, keys.leases) == 0  # empty ZSETs do not exist
    assert redis_conn.xlen(keys.dead) == 0

    wait_until(
        lambda: next(redis_conn.scan_iter(match=keys.contact("*"), count=1000), None) is None,
        timeout_s=CONFIRMED_TTL_S + 15,
        message="confirmed state expired",
    )
    remaining = _prefix_keys(redis_conn, keys)
    unexplained = {name: info for name, info in remaining.items() if name not in BOUNDED}
    assert unexplained == {}
    for name, info in remaining.items():
        if name in ("kombu:contact-sync", "kombu:unacked", "kombu:unacked_index"):
            assert info["size"] <= 8, (name, info)
    assert remaining["events"]["size"] == 0
    assert redis_conn.exists(keys.dead) == 0

    assert len(samples.pending) > EMAILS / 2
    assert max(samples.confirmed_ttls_ms) <= CONFIRMED_TTL_S * 1000
    audit = RequestAudit.of(emulator_admin.requests_log())
    print(
        f"\nmemory: {EVENTS} events, {EMAILS} emails; produced {produced_s:.1f}s, ingested "
        f"{ingested_s:.1f}s, drained {drained_s:.1f}s; pending hash "
        f"{statistics.mean(samples.pending.values()):.0f} B (n={len(samples.pending)}), "
        f"confirmed hash {statistics.mean(samples.confirmed.values()):.0f} B "
        f"(n={len(samples.confirmed)}); due ZSET "
        f"{due_bytes / max(due, 1):.0f} B per entry ({due} due); used_memory grew "
        f"{pending_total_bytes / EMAILS:.0f} B per pending contact; duplicates {audit.duplicates} (resending {audit.resending}); keys left {sorted(remaining)}"
    )
