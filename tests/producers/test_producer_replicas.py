"""CONTACT_SYNC_PRODUCER_MIN_REPLICAS: the producer's WAIT, against a private master and replica."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from producers import ContactSyncProducer, EnqueueError
from tests._redis_server import RedisServer, redis_required, start_replicated
from worker.errors import ConfigError
from worker.settings import Settings


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and one replica of it, in sync, for this module."""
    try:
        master, replica = start_replicated(1)
    except RuntimeError as exc:
        if redis_required():
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"no redis-server available: {exc}")
    yield master, replica
    replica.stop()
    master.stop()


@pytest.fixture
def replica_client(pair: tuple[RedisServer, RedisServer]) -> Iterator[redis.Redis]:
    client = redis.Redis(port=pair[1].port)
    yield client
    client.close()


@pytest.fixture
def master_client(pair: tuple[RedisServer, RedisServer]) -> Iterator[redis.Redis]:
    client = redis.Redis(port=pair[0].port)
    yield client
    client.close()


def _ids(client: redis.Redis, prefix: str) -> list[str]:
    return [json.loads(entry[b"event"])["id"] for _, entry in client.xrange(f"{prefix}:events")]


def _waits(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def test_an_event_sent_with_min_replicas_is_on_the_replica_when_the_call_returns(
    pair, master_client, replica_client, key_prefix
):
    """With min_replicas=1, contact_changed runs one WAIT per event and returns only once
    the replica holds it."""
    producer = ContactSyncProducer(pair[0].url, key_prefix, min_replicas=1)
    waits_before = _waits(master_client)
    try:
        sent = [producer.contact_changed(f"u{n}@example.com", first_name="A") for n in range(20)]
    finally:
        producer.close()
    assert _waits(master_client) - waits_before == 20
    # No polling here: WAIT already counted the replica's acknowledgement of these writes.
    assert _ids(replica_client, key_prefix) == sent


def test_too_few_replicas_in_time_raise_enqueue_error(pair, master_client, key_prefix):
    """When fewer replicas than required acknowledge within the timeout, contact_changed
    raises EnqueueError after that timeout, saying so; the master holds the event."""
    producer = ContactSyncProducer(pair[0].url, key_prefix, min_replicas=2, wait_timeout_ms=200)
    started = time.monotonic()
    try:
        with pytest.raises(
            EnqueueError, match=r"[01] of the 2 replicas required .* 200 ms"
        ) as info:
            producer.contact_changed("jon@example.com", first_name="John")
    finally:
        producer.close()
    assert 0.2 <= time.monotonic() - started < 2.0
    assert info.value.written == 0
    assert info.value.__cause__ is None  # a master answered: not a connection failure
    assert len(_ids(master_client, key_prefix)) == 1


def test_send_many_waits_for_the_replica_after_each_chunk(
    pair, master_client, replica_client, key_prefix
):
    """send_many with min_replicas=1 returns once the replica holds every chunk."""
    producer = ContactSyncProducer(pair[0].url, key_prefix, min_replicas=1)
    contacts = [{"email": f"user{n}@example.com"} for n in range(2500)]
    waits_before = _waits(master_client)
    try:
        assert producer.send_many(contacts) == 2500
    finally:
        producer.close()
    assert _waits(master_client) - waits_before == 3
    assert replica_client.xlen(f"{key_prefix}:events") == 2500


def test_send_many_counts_no_chunk_too_few_replicas_acknowledged(pair, master_client, key_prefix):
    """When the first chunk is not acknowledged by enough replicas, EnqueueError.written is 0
    (resend from the start, which is safe), although the master holds that chunk."""
    producer = ContactSyncProducer(pair[0].url, key_prefix, min_replicas=2, wait_timeout_ms=100)
    contacts = [{"email": f"user{n}@example.com"} for n in range(1500)]
    try:
        with pytest.raises(EnqueueError, match=r"events 1 to 1,000 of 1,500") as info:
            producer.send_many(contacts)
    finally:
        producer.close()
    assert info.value.written == 0
    assert master_client.xlen(f"{key_prefix}:events") == 1000


def test_from_env_reads_the_replica_settings(monkeypatch, pair):
    """ContactSyncProducer.from_env takes MIN_REPLICAS and WAIT_TIMEOUT_MS from the
    environment, and its reply timeout outlasts a long WAIT."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", pair[0].url)
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "2")
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS", "7000")
    producer = ContactSyncProducer.from_env()
    try:
        assert (producer.min_replicas, producer.wait_timeout_ms) == (2, 7000)
        assert producer.redis.connection_pool.connection_kwargs["socket_timeout"] == 8.0
    finally:
        producer.close()


def test_the_replica_settings_default_to_no_wait() -> None:
    """Without the variables a producer waits for no replica, with a 1,000 ms timeout ready."""
    settings = Settings.from_env({})
    assert (settings.producer_min_replicas, settings.producer_wait_timeout_ms) == (0, 1000)
    producer = ContactSyncProducer("redis://127.0.0.1:1/0")
    assert (producer.min_replicas, producer.wait_timeout_ms) == (0, 1000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "-1"),
        ("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "two"),
        ("CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS", "0"),
    ],
)
def test_bad_replica_settings_are_refused_at_start(name: str, value: str) -> None:
    """A negative replica count or a timeout under 1 ms (WAIT 0 would block forever) is a
    ConfigError naming the variable."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert caught.value.variable == name
