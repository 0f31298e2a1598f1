"""Dead letters end to end: API rejections, poison stream entries, and replay after a fix."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer, InvalidContactEvent
from tests.integration._harness import WorkerPool, drained, wait_until
from worker import cli
from worker.deadletters import DeadLetters
from worker.keys import CONSUMER_GROUP, Keys

OVERSIZED = "x" * (70 * 1024)
DEEPLY_NESTED = "[" * 30_000 + "]" * 30_000  # under the size limit, far over any recursion limit
NOT_UNICODE = "Not valid Unicode text: contains a lone surrogate."


def _wire(contact: Any, **envelope: Any) -> str:
    document = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "occurred_at": "2026-11-29T13:00:00+00:00",
        "contact": contact,
        **envelope,
    }
    return json.dumps(document)


def _messages(errors: Any) -> str:
    return json.dumps(errors, ensure_ascii=False)


# name -> (raw stream entry fields, check on the dead letter's errors)
POISON: dict[str, tuple[dict[str, Any], Callable[[Any], bool]]] = {
    "not_json": (
        {"event": "{this is not json"},
        lambda e: e["_event"][0].startswith("Not valid JSON"),
    ),
    "bad_email": (
        {"event": _wire({"email": "not-an-email", "firstName": "A"})},
        lambda e: e == {"contact": {"email": ["Not a valid email address."]}},
    ),
    "unknown_attribute": (
        {"event": _wire({"email": "u@example.com", "nickname": "Jo"})},
        lambda e: e == {"contact": {"nickname": ["Unknown field."]}},
    ),
    "orgid": (
        {"event": _wire({"email": "o@example.com", "orgid": "7"})},
        lambda e: (
            list(e["contact"]) == ["orgid"]
            and e["contact"]["orgid"][0].startswith("orgid is deprecated")
        ),
    ),
    "wrong_type": (
        {"event": _wire({"email": "t@example.com", "firstName": 5})},
        lambda e: e == {"contact": {"firstName": ["Not a valid string."]}},
    ),
    "oversized": (
        {"event": _wire({"email": "big@example.com", "firstName": OVERSIZED})},
        lambda e: "the limit is 65536" in e["_event"][0],
    ),
    "missing_event_field": (
        {"payload": "hello"},
        lambda e: "no 'event' field" in e["_entry"][0] and "payload" in e["_entry"][0],
    ),
    "invalid_utf8": (
        {"event": b'{"v": 1, "contact": {"firstName": "\xff\xfe"}}'},
        lambda e: e == {"_event": ["Event is not valid UTF-8."]},
    ),
    "deeply_nested": (
        {"event": DEEPLY_NESTED},
        lambda e: "RecursionError" in e["_event"][0] or "nested" in e["_event"][0],
    ),
    # JSON may spell a lone surrogate as an escape; Python decodes it, but Redis cannot store it.
    "lone_surrogate": (
        {"event": _wire({"email": "s@example.com", "firstName": "\ud800"})},
        lambda e: e == {"_event": [NOT_UNICODE]},
    ),
}


def test_api_rejection_becomes_a_dead_letter_and_replays_after_the_fix(
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
    """A 422 dead-letters the change with ActiveCampaign's titles; a replay after the fix delivers it."""
    emulator_admin.set_faults(reject_emails=["^bad.*@example\\.com$"])
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    email = "bad.data@example.com"
    values = {"firstName": "Bad", "lastName": "Data", "phone": "123", "field:1": "one"}
    producer.contact_changed(
        email, first_name="Bad", last_name="Data", phone="123", fields={1: "one"}
    )

    dead = DeadLetters(redis_conn, keys)
    wait_until(lambda: dead.count() == 1, timeout_s=20, message="a dead letter")
    (letter,) = dead.list()
    assert letter.reason == "api_rejected"
    assert letter.status == 422
    assert letter.errors == ["Email address is not valid."]
    assert letter.email == email
    kept = {
        name: value for name, value in letter.as_dict()["attributes"].items() if name != "email"
    }
    assert kept == values
    (line,) = wait_until(
        lambda: worker.events_named("contact.dead_lettered"), timeout_s=10, message="log line"
    )
    assert line["level"] == "error"
    assert line["reason"] == "api_rejected"
    assert line["status"] == 422
    assert line["errors"] == ["Email address is not valid."]
    assert emulator_admin.contacts() == {}

    emulator_admin.clear_faults()  # "the data is corrected"
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    capsys.readouterr()
    assert cli.main(["dead-letters", "replay", letter.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {letter.id: "replayed"}
    assert dead.count() == 0

    stored = wait_until(
        lambda: emulator_admin.contacts().get(email), timeout_s=20, message="replayed delivery"
    )
    assert (stored["firstName"], stored["lastName"], stored["phone"]) == ("Bad", "Data", "123")
    assert stored["fieldValues"] == {"1": "one"}
    wait_until(lambda: drained(redis_conn, keys), timeout_s=10, message="drained")
    assert dead.count() == 0


def test_poison_stream_entries_become_dead_letters_and_the_worker_keeps_going(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """Every malformed raw entry is dead-lettered as invalid_event with its reasons, acked, and logged; valid events still sync."""
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    entry_ids = {
        redis_conn.xadd(keys.events, fields).decode(): name  # type: ignore[arg-type]
        for name, (fields, _) in POISON.items()
    }
    dead = DeadLetters(redis_conn, keys)
    wait_until(
        lambda: dead.count() == len(POISON), timeout_s=20, message="every entry dead-lettered"
    )

    producer.contact_changed("after.poison@example.com", first_name="Still", last_name="Works")
    stored = wait_until(
        lambda: emulator_admin.contacts().get("after.poison@example.com"),
        timeout_s=20,
        message="a valid event after the poison",
    )
    assert (stored["firstName"], stored["lastName"]) == ("Still", "Works")
    assert worker.process is not None
    assert worker.process.poll() is None, "the worker died"

    letters = {letter.entry: letter for letter in dead.list(limit=100)}
    assert set(letters) == set(entry_ids)
    for entry_id, name in entry_ids.items():
        letter = letters[entry_id]
        _, check = POISON[name]
        assert letter.reason == "invalid_event", name
        assert letter.raw, name
        assert check(letter.errors), f"{name}: {_messages(letter.errors)}"

    wait_until(lambda: drained(redis_conn, keys), timeout_s=10, message="drained")
    assert redis_conn.xpending(keys.events, CONSUMER_GROUP)["pending"] == 0
    assert redis_conn.xlen(keys.events) == 0
    invalid_lines = worker.events_named("event.invalid")
    assert sorted(line["entry_id"] for line in invalid_lines) == sorted(entry_ids)
    assert {line["level"] for line in invalid_lines} == {"warning"}


def test_producer_rejects_the_same_inputs_with_per_field_messages(
    producer: ContactSyncProducer, redis_conn: redis.Redis, keys: Keys
) -> None:
    """The producer raises InvalidContactEvent with per-field messages for each bad input and writes nothing."""
    bad_contacts: dict[str, tuple[Any, Callable[[Any], bool]]] = {
        "not_a_dict": ("{this is not json", lambda m: m == {"_schema": ["Invalid input type."]}),
        "bad_email": (
            {"email": "not-an-email"},
            lambda m: m == {"email": ["Not a valid email address."]},
        ),
        "unknown_attribute": (
            {"email": "u@example.com", "nickname": "Jo"},
            lambda m: m == {"nickname": ["Unknown field."]},
        ),
        "orgid": (
            {"email": "o@example.com", "orgid": "7"},
            lambda m: m["orgid"][0].startswith("orgid is deprecated"),
        ),
        "wrong_type": (
            {"email": "t@example.com", "firstName": 5},
            lambda m: m == {"firstName": ["Not a valid string."]},
        ),
        "oversized": (
            {
                "email": "big@example.com",
                "fieldValues": [{"field": str(n), "value": "x" * 16_000} for n in range(1, 6)],
            },
            lambda m: "the limit is 65536" in m["_event"][0],
        ),
        "missing_email": (
            {"firstName": "A"},
            lambda m: m == {"email": ["Missing data for required field."]},
        ),
        "deeply_nested": (
            {"email": "n@example.com", "firstName": json.loads("[" * 500 + "]" * 500)},
            lambda m: m == {"firstName": ["Not a valid string."]},
        ),
        "lone_surrogate": (
            {"email": "s@example.com", "firstName": "\ud800"},
            lambda m: m == {"firstName": [NOT_UNICODE]},
        ),
    }
    for name, (contact, check) in bad_contacts.items():
        with pytest.raises(InvalidContactEvent) as caught:
            producer.send_many([{"email": "fine@example.com"}, contact])
        assert isinstance(caught.value, ValueError)
        assert list(caught.value.messages) == ["1"], name
        assert check(caught.value.messages["1"]), f"{name}: {caught.value.messages}"

    calls: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "bad_email": ({"email": "not-an-email"}, {"email": ["Not a valid email address."]}),
        "wrong_type": (
            {"email": "t@example.com", "first_name": 5},
            {"firstName": ["Not a valid string."]},
        ),
        "bad_field_id": (
            {"email": "f@example.com", "fields": {"0": "x"}},
            {"fields": {"0": {"field": ["Field id must be a positive integer."]}}},
        ),
    }
    for name, (kwargs, expected) in calls.items():
        with pytest.raises(InvalidContactEvent) as caught:
            producer.contact_changed(**kwargs)
        assert caught.value.messages == expected, name
    with pytest.raises(InvalidContactEvent) as caught:
        producer.contact_changed("s@example.com", last_name="\udcff")
    assert caught.value.messages == {"lastName": [NOT_UNICODE]}

    assert redis_conn.xlen(keys.events) == 0
