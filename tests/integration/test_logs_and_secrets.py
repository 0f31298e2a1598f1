"""Structured logs and secrets: every line is JSON, the token appears nowhere, emails are masked."""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests._redis_server import free_port
from tests.integration._harness import TOKEN, WorkerPool, WorkerProcess, drained, wait_until
from worker import cli
from worker.client import ActiveCampaignClient
from worker.errors import ApiTransportError
from worker.keys import Keys
from worker.settings import Secret

SECRET = TOKEN.encode()


def _busy_run(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    *,
    watch: Any = None,
) -> WorkerProcess:
    """Successes, 503 retries, a 422 dead letter and an invalid event; then a clean shutdown."""
    admin.set_faults(
        force_status={"status": 503, "count": 3}, reject_emails=["^reject"], latency_ms=300
    )
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    producer.send_many({"email": f"ok{n}@example.com", "firstName": f"N{n}"} for n in range(4))
    producer.contact_changed("reject.me@example.com", first_name="No")
    redis_conn.xadd(keys.events, {"event": "not json"})

    def done() -> bool:
        if watch is not None:
            watch()
        return (
            len(admin.contacts()) == 4
            and redis_conn.xlen(keys.dead) == 2
            and drained(redis_conn, keys)
            and bool(worker.events_named("contact.dead_lettered"))
        )

    wait_until(done, timeout_s=25, message="the busy run")
    assert worker.events_named("contact.sync_retry"), "expected 503 retries"
    assert worker.events_named("event.invalid")
    assert worker.stop() == 0
    return worker


def test_every_line_a_worker_prints_is_json(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """Across successes, retries, dead letters, an invalid event and shutdown, every output line is a JSON object."""
    worker = _busy_run(workers, producer, emulator_admin, redis_conn, keys)
    lines = worker.log_lines()  # raises on the first line that is not JSON
    assert len(lines) > 20
    for line in lines:
        assert isinstance(line, dict)
        assert {"event", "level", "timestamp"} <= set(line), line
    events = {line["event"] for line in lines}
    assert {"contact.synced", "contact.sync_retry", "contact.dead_lettered", "event.invalid"} <= (
        events
    )
    assert any("shutdown" in line["event"].lower() for line in lines), "no shutdown line"


class _RedisWatcher:
    """Collects every byte under the test's prefix, and every pub/sub message, while it runs."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.blobs: list[bytes] = []
        self.pubsub = client.pubsub()
        self.pubsub.psubscribe("*")

    def __call__(self) -> None:
        while (message := self.pubsub.get_message(timeout=0)) is not None:
            if isinstance(message.get("data"), bytes):
                self._add(message["channel"], message["data"])
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            self._add(key, *self._values(key))

    def _values(self, key: bytes) -> list[bytes]:
        kind = self.client.type(key)
        if kind == b"string":
            return [self.client.get(key) or b""]
        if kind == b"list":
            return list(self.client.lrange(key, 0, -1))
        if kind == b"hash":
            return [part for item in self.client.hgetall(key).items() for part in item]
        if kind == b"set":
            return list(self.client.smembers(key))
        if kind == b"zset":
            return [member for member, _ in self.client.zrange(key, 0, -1, withscores=True)]
        if kind == b"stream":
            entries = self.client.xrange(key)
            return [part for _, fields in entries for item in fields.items() for part in item]
        return []

    def _add(self, *blobs: bytes) -> None:
        for blob in blobs:
            self.blobs.append(blob)
            self.blobs.extend(_decoded_bodies(blob))

    def close(self) -> None:
        self.pubsub.close()


def _decoded_bodies(blob: bytes) -> Iterator[bytes]:
    """kombu stores message bodies base64-encoded; yield them decoded so a check sees them."""
    try:
        document = json.loads(blob)
    except ValueError:
        return
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            body = item.get("body")
            if (
                isinstance(body, str)
                and item.get("properties", {}).get("body_encoding") == "base64"
            ):
                yield base64.b64decode(body)
            stack.extend(item.values())


def test_the_token_appears_nowhere(
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
    """The API token is in no worker output, dead letter, task message, pub/sub event or CLI output."""
    watcher = _RedisWatcher(redis_conn, key_prefix)
    try:
        worker = _busy_run(workers, producer, emulator_admin, redis_conn, keys, watch=watcher)
        watcher()
    finally:
        watcher.close()

    seen = b"\n".join(watcher.blobs)
    # The check is only worth something if it saw the task messages themselves.
    assert b"contact_sync.sync_contact" in seen
    assert b"ok1@example.com" in seen  # a decoded task body: args are [email]
    assert b":kombu:" in b"\n".join(redis_conn.scan_iter(match=f"{key_prefix}:kombu:*"))
    assert SECRET not in seen

    assert SECRET not in worker.log_path.read_bytes()
    letters = redis_conn.xrange(keys.dead)
    assert len(letters) == 2
    for _, fields in letters:
        for name, value in fields.items():
            assert SECRET not in name
            assert SECRET not in value

    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    capsys.readouterr()
    for command in (
        ["status", "--json"],
        ["status"],
        ["dead-letters", "list", "--json"],
        ["dead-letters", "show", letters[0][0].decode(), "--json"],
    ):
        assert cli.main(command) == 0, command
        out, err = capsys.readouterr()
        assert out, command
        assert TOKEN not in out + err, command
    assert json.loads(_cli_json(["status", "--json"], capsys))["dead_letters"] == 2


def _cli_json(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(command) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("failure", ["refused", "reset", "timeout"])
def test_transport_errors_never_carry_the_token(
    emulator: FakeActiveCampaign, emulator_admin: EmulatorClient, failure: str
) -> None:
    """ApiTransportError's message, repr and formatted traceback never show the token."""
    url = emulator.url
    if failure == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    elif failure == "reset":
        emulator_admin.set_faults(outage={"mode": "reset", "seconds": None})
    else:
        emulator_admin.set_faults(outage={"mode": "hang", "seconds": None}, hang_s=2)
    client = ActiveCampaignClient(url, Secret(TOKEN), timeout_s=0.5)
    try:
        with pytest.raises(ApiTransportError) as caught:
            client.sync_contact({"email": "jo@example.com", "firstName": "Jo"})
    finally:
        client.close()
    error = caught.value
    shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
    shown += [str(arg) for arg in error.args]
    for text in shown:
        assert TOKEN not in text
    assert "timeout" in str(error) if failure == "timeout" else "transport error" in str(error)


def test_emails_are_masked_unless_pii_logging_is_enabled(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """By default no whole email reaches the logs (u***@example.com); CONTACT_SYNC_LOG_PII=true logs them whole."""
    (masked,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    hidden = ["alice.smith@example.com", "bob.jones@example.org"]
    for email in hidden:
        producer.contact_changed(email, first_name="Secret")
    wait_until(
        lambda: len(masked.events_named("contact.synced")) == 2 and drained(redis_conn, keys),
        timeout_s=20,
        message="masked syncs",
    )
    masked.stop()
    assert sorted(line["email"] for line in masked.events_named("contact.synced")) == [
        "a***@example.com",
        "b***@example.org",
    ]
    output = masked.output()
    for email in hidden:
        assert email not in output
        assert email.split("@")[0] not in output

    (plain,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2", CONTACT_SYNC_LOG_PII="true")
    shown = "carol.white@example.com"
    producer.contact_changed(shown, first_name="Open")
    (line,) = wait_until(
        lambda: plain.events_named("contact.synced"), timeout_s=20, message="plain sync"
    )
    assert line["email"] == shown
    assert set(emulator_admin.contacts()) == {*hidden, shown}


def test_synced_lines_carry_the_outcome_fields(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """contact.synced carries contact_id, action (unknown on a first sync, then updated), attempt, latency, merged events, fields, task id and name."""
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="1")
    email = "dana@example.com"
    producer.contact_changed(email, first_name="Dana")
    producer.contact_changed(email, last_name="Scully")
    (first,) = wait_until(
        lambda: worker.events_named("contact.synced"), timeout_s=20, message="first sync"
    )
    wait_until(lambda: drained(redis_conn, keys), timeout_s=10, message="drained")
    producer.contact_changed(email, phone="555")
    second = wait_until(
        lambda: worker.events_named("contact.synced")[1:], timeout_s=20, message="second sync"
    )[0]

    contact_id = str(emulator_admin.contacts()[email]["id"])
    assert first["action"] == "unknown"  # a first sync: ActiveCampaign may have had it
    assert second["action"] == "updated"
    assert first["contact_id"] == second["contact_id"] == contact_id
    assert first["merged_events"] == 2
    assert second["merged_events"] == 1
    assert first["fields_sent"] == ["firstName", "lastName"]
    assert second["fields_sent"] == ["phone"]
    for line in (first, second):
        assert line["level"] == "info"
        assert line["attempt"] == 1
        assert isinstance(line["latency_ms"], int | float)
        assert line["latency_ms"] > 0
        assert line["task"] == "contact_sync.sync_contact"
        assert isinstance(line["task_id"], str)
        assert line["task_id"]
        assert line["email"] == "d***@example.com"
    assert first["task_id"] != second["task_id"]
