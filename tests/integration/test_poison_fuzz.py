"""Poison input: 10,000 hypothesis-generated raw stream entries against a real worker, and
random Python values against the producer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings

from producers import ContactSyncProducer, InvalidContactEvent
from tests.integration import _poison
from tests.integration._harness import WorkerPool, child_pids, wait_until
from worker.keys import CONSUMER_GROUP, Keys
from worker.pump import decode_entry
from worker.schema import ContactEvent, decode_event
from worker.store import InvalidEntry

# Flush a pipeline at this many bytes: a few entries are ~140 KB.
_PIPELINE_BYTES = 4 << 20


def _process_tree(pid: int) -> set[int]:
    """A worker's main process and its pool children."""
    return {pid, *child_pids(pid)}


def _xadd_all(client: redis.Redis, stream: str, entries: list[dict[bytes, bytes]]) -> list[str]:
    """XADD every entry, pipelined; returns the stream ids in order."""
    ids: list[str] = []
    pipe = client.pipeline(transaction=False)
    pending_bytes = 0
    for fields in entries:
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pending_bytes += sum(len(k) + len(v) for k, v in fields.items())
        if pending_bytes >= _PIPELINE_BYTES:
            ids += [entry_id.decode() for entry_id in pipe.execute()]
            pending_bytes = 0
    ids += [entry_id.decode() for entry_id in pipe.execute()]
    return ids


def _invalid_dead_letter_entries(client: redis.Redis, stream: str) -> list[str]:
    """The stream ids recorded by every invalid_event dead letter, read in chunks."""
    found: list[str] = []
    start = "-"
    while True:
        chunk = client.xrange(stream, min=start, count=500)
        for _, fields in chunk:
            if fields[b"reason"] == b"invalid_event":
                found.append(fields[b"entry"].decode())
        if len(chunk) < 500:
            return found
        start = "(" + chunk[-1][0].decode()


@pytest.mark.slow
def test_ten_thousand_fuzzed_entries_are_each_merged_or_dead_lettered(
    workers: WorkerPool, redis_conn: redis.Redis, keys: Keys
) -> None:
    """10,000 fuzzed raw entries: same worker pids throughout, every entry acked and merged or dead-lettered, nothing pending."""
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="1")
    assert worker.process is not None
    pids = _process_tree(worker.process.pid)
    assert len(pids) == 3, pids  # main process + two pool children

    started = time.monotonic()
    entries: list[dict[bytes, bytes]] = []
    for strategy, count in _poison.RAW_FAMILIES.values():
        entries += _poison.collect(strategy, count)
    assert len(entries) == 10_000
    generated_s = time.monotonic() - started

    ids = _xadd_all(redis_conn, keys.events, entries)
    written = time.monotonic()
    # What the worker should decide, by the same decoding it runs: valid or invalid. A crash
    # here names the entry; the worker would fail the whole batch on it.
    predicted_invalid = set()
    for entry_id, fields in zip(ids, entries, strict=True):
        try:
            decoded = decode_entry(entry_id, fields)
        except Exception as exc:
            raise AssertionError(f"decoding crashed on {fields!r:.500}") from exc
        if isinstance(decoded, InvalidEntry):
            predicted_invalid.add(entry_id)
    predicted_valid = len(entries) - len(predicted_invalid)
    assert predicted_valid > 500, "the fuzz should also carry valid events"
    assert len(predicted_invalid) > 5_000

    def ingested() -> bool:
        stats = redis_conn.hgetall(keys.stats)
        done = int(stats.get(b"events_ingested", 0)) + int(stats.get(b"events_invalid", 0))
        return done >= len(entries)

    try:
        wait_until(ingested, timeout_s=150, interval_s=0.5, message="every entry ingested")
    except AssertionError:
        stuck = redis_conn.xpending_range(keys.events, CONSUMER_GROUP, "-", "+", 5)
        shown = [
            redis_conn.xrange(keys.events, item["message_id"], item["message_id"]) for item in stuck
        ]
        raise AssertionError(f"entries left pending, e.g. {shown!r:.2000}") from None

    ingest_s = time.monotonic() - written
    stats = {k.decode(): int(v) for k, v in redis_conn.hgetall(keys.stats).items()}
    assert stats["events_ingested"] == predicted_valid, stats  # merged or stale, never lost
    assert stats["events_invalid"] == len(predicted_invalid), stats
    dead_entries = _invalid_dead_letter_entries(redis_conn, keys.dead)
    assert len(dead_entries) == len(set(dead_entries)), "an entry was dead-lettered twice"
    assert set(dead_entries) == predicted_invalid
    assert stats["events_ingested"] + len(dead_entries) == len(entries)
    assert redis_conn.xlen(keys.events) == 0
    assert redis_conn.xpending(keys.events, CONSUMER_GROUP)["pending"] == 0

    assert worker.process.poll() is None, "the worker died"
    assert _process_tree(worker.process.pid) == pids, "a pool process was replaced"
    lines = worker.log_lines()
    assert not [line for line in lines if "exception" in line or "exc_info" in line]
    assert not [line for line in lines if "raised unexpected" in str(line.get("event"))]
    print(
        f"\npoison: 10,000 entries generated in {generated_s:.1f}s, {predicted_valid} valid, "
        f"{len(dead_entries)} dead-lettered, all ingested {ingest_s:.1f}s after the XADDs"
    )


def _refused_or(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the InvalidContactEvent it raised; anything else propagates."""
    try:
        return call()
    except InvalidContactEvent as exc:
        return exc


def _assert_accepted_events_decode(client: redis.Redis, keys: Keys, count: int) -> None:
    """The newest ``count`` entries are events the worker accepts: producer and worker agree."""
    if count == 0:
        return
    for _, fields in client.xrevrange(keys.events, count=count):
        assert isinstance(decode_event(fields[b"event"]), ContactEvent)


@pytest.mark.slow
@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one producer and stream for every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(call=_poison.producer_calls, batch=_poison.producer_batches)
def test_producer_only_ever_raises_invalid_contact_event(
    producer: ContactSyncProducer,
    redis_conn: redis.Redis,
    keys: Keys,
    call: dict[str, Any],
    batch: list[Any],
) -> None:
    """contact_changed and send_many with random Python values either enqueue events the worker accepts or raise InvalidContactEvent."""
    before = redis_conn.xlen(keys.events)
    result = _refused_or(lambda: producer.contact_changed(**call))
    if isinstance(result, InvalidContactEvent):
        assert isinstance(result.messages, dict)
        assert redis_conn.xlen(keys.events) == before
    else:
        assert isinstance(result, str)
        assert redis_conn.xlen(keys.events) == before + 1
        _assert_accepted_events_decode(redis_conn, keys, 1)

    before = redis_conn.xlen(keys.events)
    result = _refused_or(lambda: producer.send_many(batch))
    if isinstance(result, InvalidContactEvent):
        assert isinstance(result.messages, dict)
        assert redis_conn.xlen(keys.events) == before
    else:
        assert result == len(batch)
        assert redis_conn.xlen(keys.events) == before + result
        _assert_accepted_events_decode(redis_conn, keys, result)
