"""The core producer against a real Redis: wire format, validation, batching, failures."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import producers
from producers import ContactSyncProducer, EnqueueError, InvalidContactEvent
from tests._redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def producer(redis_url: str, key_prefix: str) -> Iterator[ContactSyncProducer]:
    producer = ContactSyncProducer(redis_url, key_prefix)
    yield producer
    producer.close()


def read_events(client: redis.Redis, key_prefix: str) -> list[dict[str, Any]]:
    """Every event on the stream, decoded; each entry must hold exactly the field ``event``."""
    events = []
    for _entry_id, entry in client.xrange(f"{key_prefix}:events"):
        assert list(entry) == [b"event"]
        events.append(json.loads(entry[b"event"]))
    return events


def test_contact_changed_writes_one_v2_event(producer, redis_client, key_prefix):
    """contact_changed XADDs one v2 event to {prefix}:events and returns its id."""
    occurred_at = dt.datetime(2026, 11, 29, 13, 0, 0, 123456, tzinfo=dt.UTC)
    event_id = producer.contact_changed(
        " JonDoe@Example.com ",
        first_name="John",
        last_name="Doe",
        phone="7223224241",
        fields={1: "The Value", "6": dt.date(2008, 1, 20)},
        occurred_at=occurred_at,
        source="tests:core",
    )
    assert str(uuid.UUID(event_id, version=4)) == event_id
    assert read_events(redis_client, key_prefix) == [
        {
            "v": 2,
            "id": event_id,
            "occurred_at": "2026-11-29T13:00:00.123456+00:00",
            "source": "tests:core",
            "contact": {
                "email": "jondoe@example.com",
                "firstName": "John",
                "lastName": "Doe",
                "phone": "7223224241",
                "fieldValues": [
                    {"field": "1", "value": "The Value"},
                    {"field": "6", "value": "2008-01-20"},
                ],
            },
        }
    ]


def test_none_is_absent_and_empty_string_is_kept(producer, redis_client, key_prefix):
    """None attributes are left out of the contact ("unchanged"); "" is sent as a value."""
    producer.contact_changed("jon@example.com", first_name="", last_name=None)
    (event,) = read_events(redis_client, key_prefix)
    assert event["contact"] == {"email": "jon@example.com", "firstName": ""}
    assert "source" not in event


def test_list_value_becomes_double_pipe_string(producer, redis_client, key_prefix):
    """A list of strings becomes ActiveCampaign's ||a||b|| multi-value form."""
    producer.contact_changed("jon@example.com", fields={3: ["a", "b"]})
    (event,) = read_events(redis_client, key_prefix)
    assert event["contact"]["fieldValues"] == [{"field": "3", "value": "||a||b||"}]


def test_occurred_at_defaults_to_now_in_utc(producer, redis_client, key_prefix):
    """Without occurred_at the event carries the aware time of the call."""
    before = dt.datetime.now(dt.UTC)
    producer.contact_changed("jon@example.com", first_name="John")
    after = dt.datetime.now(dt.UTC)
    (event,) = read_events(redis_client, key_prefix)
    assert before <= dt.datetime.fromisoformat(event["occurred_at"]) <= after


def test_producer_source_is_the_default_source(redis_url, key_prefix, redis_client):
    """The producer's source goes on every event unless a call passes its own."""
    producer = ContactSyncProducer(redis_url, key_prefix, source="billing")
    producer.contact_changed("a@example.com")
    producer.contact_changed("b@example.com", source="signup")
    producer.close()
    assert [e["source"] for e in read_events(redis_client, key_prefix)] == ["billing", "signup"]


def test_naive_occurred_at_is_rejected(producer, redis_client, key_prefix):
    """A naive occurred_at raises InvalidContactEvent and writes nothing."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.contact_changed("jon@example.com", occurred_at=dt.datetime(2026, 1, 1, 12, 0))
    assert info.value.messages == {"occurred_at": ["Must be timezone-aware."]}
    assert redis_client.exists(f"{key_prefix}:events") == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "jon@example.com", "first_name": 123}, "firstName"),
        ({"email": "jon@example.com", "phone": ["7223224241"]}, "phone"),
        ({"email": "jon@example.com", "first_name": "x" * 256}, "firstName"),
        ({"email": "jon@example.com", "fields": {"%bad tag%": "x"}}, "fields"),
        ({"email": "jon@example.com", "fields": {6: 42}}, "fields"),
        ({"email": "jon@example.com", "fields": {6: dt.datetime(2026, 1, 1)}}, "fields"),
        ({"email": "jon@example.com", "fields": [(6, "x")]}, "fields"),
        ({"email": "jon@example.com", "tags": {"Trial": "yes"}}, "tags"),
        ({"email": "jon@example.com", "tags": ["Trial"]}, "tags"),
        ({"email": "jon@example.com", "lists": {"News": "active"}}, "lists"),
        ({"email": "jon@example.com", "account": " "}, "account"),
        ({"email": "jon@example.com", "account": 3}, "account"),
    ],
)
def test_invalid_contact_raises_with_field_messages(
    producer, redis_client, key_prefix, kwargs, field
):
    """Bad emails, values, tags, lists and accounts raise InvalidContactEvent naming the argument; nothing is written."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.contact_changed(**kwargs)
    assert isinstance(info.value, ValueError)
    assert field in info.value.messages
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_oversized_event_is_rejected(producer, redis_client, key_prefix):
    """An event whose JSON exceeds 64 KiB raises InvalidContactEvent and writes nothing."""
    fields = {field_id: "x" * 15_000 for field_id in range(1, 6)}
    with pytest.raises(InvalidContactEvent) as info:
        producer.contact_changed("jon@example.com", fields=fields)
    assert "_event" in info.value.messages
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_send_many_pipelines_and_returns_count(producer, redis_client, key_prefix):
    """send_many writes every contact, in order, and returns how many it wrote."""
    contacts = [{"email": f"user{i}@example.com", "firstName": f"U{i}"} for i in range(2500)]
    assert producer.send_many(iter(contacts)) == 2500
    events = read_events(redis_client, key_prefix)
    assert [e["contact"] for e in events] == contacts


def test_send_many_gives_each_event_a_distinct_version_4_uuid_and_one_time(
    producer, redis_client, key_prefix
):
    """Ids are RFC 4122 version-4 UUIDs in canonical form, none repeated across 2,500 events."""
    before = dt.datetime.now(dt.UTC)
    producer.send_many([{"email": f"user{i}@example.com"} for i in range(2500)])
    events = read_events(redis_client, key_prefix)
    ids = [event["id"] for event in events]
    assert len(set(ids)) == 2500
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    (occurred,) = {event["occurred_at"] for event in events}
    assert before <= dt.datetime.fromisoformat(occurred) <= dt.datetime.now(dt.UTC)


def test_a_failed_chunk_keeps_the_earlier_ones_and_says_how_many(
    producer, redis_client, key_prefix, monkeypatch
):
    """When the 2nd chunk of 1,000 fails, EnqueueError.written is 1,000, exactly the first 1,000 events are on the stream, and resuming from there writes the rest once."""
    script, calls = producer._xadd_many, []

    def second_chunk_fails(**arguments: Any) -> Any:
        calls.append(arguments)
        if len(calls) == 2:
            raise redis.ConnectionError("connection lost")
        return script(**arguments)

    monkeypatch.setattr(producer, "_xadd_many", second_chunk_fails)
    contacts = [{"email": f"user{i}@example.com"} for i in range(2500)]
    with pytest.raises(EnqueueError) as info:
        producer.send_many(contacts)
    assert info.value.written == 1000
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert [e["contact"] for e in read_events(redis_client, key_prefix)] == contacts[:1000]

    assert producer.send_many(contacts[info.value.written :]) == 1500
    assert [e["contact"] for e in read_events(redis_client, key_prefix)] == contacts


def test_send_many_of_nothing_writes_nothing(producer, redis_client, key_prefix):
    """send_many of an empty iterable returns 0 and creates no stream."""
    assert producer.send_many([]) == 0
    assert redis_client.exists(f"{key_prefix}:events") == 0


@pytest.mark.parametrize(
    ("bad_contact", "field"),
    [
        ({"email": "c@example.com", "nickname": "Cee"}, "nickname"),
        ({"email": "c@example.com", "orgid": 7}, "orgid"),
        ({"email": "nope"}, "email"),
    ],
)
def test_send_many_rejects_all_when_one_is_invalid(
    producer, redis_client, key_prefix, bad_contact, field
):
    """An invalid contact at index k raises with messages under "k" and writes nothing."""
    contacts = [{"email": "a@example.com"}, {"email": "b@example.com"}, bad_contact]
    with pytest.raises(InvalidContactEvent) as info:
        producer.send_many(contacts)
    assert list(info.value.messages) == ["2"]
    assert field in info.value.messages["2"]
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_unknown_attribute_message_names_it(producer):
    """An unknown attribute is rejected with a message under its own name."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.send_many([{"email": "a@example.com", "nickname": "A"}])
    assert info.value.messages == {"0": {"nickname": ["Unknown field."]}}


def test_orgid_message_explains_the_deprecation(producer):
    """orgid is rejected with a message that says it is deprecated."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.send_many([{"email": "a@example.com", "orgid": 1}])
    (message,) = info.value.messages["0"]["orgid"]
    assert "deprecated" in message


def unreachable_producer(key_prefix: str) -> ContactSyncProducer:
    # Nothing listens on a port that was free a moment ago, so connecting is refused.
    return ContactSyncProducer(
        f"redis://127.0.0.1:{free_port()}/0", key_prefix, socket_timeout_s=1.0
    )


def test_contact_changed_raises_enqueue_error_when_redis_is_down(key_prefix):
    """An unreachable Redis raises EnqueueError naming the event: never a silent drop."""
    producer = unreachable_producer(key_prefix)
    with pytest.raises(EnqueueError, match=r"could not enqueue event [0-9a-f-]{36}") as info:
        producer.contact_changed("jon@example.com", first_name="John")
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_send_many_raises_enqueue_error_when_redis_is_down(key_prefix):
    """send_many raises EnqueueError, not a count, when Redis cannot be reached."""
    producer = unreachable_producer(key_prefix)
    with pytest.raises(EnqueueError):
        producer.send_many([{"email": "jon@example.com"}])


def test_validation_comes_before_connecting(key_prefix):
    """An invalid call raises InvalidContactEvent even when Redis is down."""
    producer = unreachable_producer(key_prefix)
    with pytest.raises(InvalidContactEvent):
        producer.contact_changed("not-an-email")


def test_prepare_then_write_is_contact_changed(producer, redis_client, key_prefix):
    """prepare_change encodes without writing; write_prepared XADDs that exact event."""
    prepared = producer.prepare_change("jon@example.com", first_name="John")
    assert redis_client.exists(f"{key_prefix}:events") == 0
    assert producer.write_prepared(prepared) == prepared.id
    (event,) = read_events(redis_client, key_prefix)
    assert event == json.loads(prepared.text)
    assert event["id"] == prepared.id


def test_from_env_reads_url_and_prefix(monkeypatch, redis_url, key_prefix, redis_client):
    """from_env() uses CONTACT_SYNC_REDIS_URL and CONTACT_SYNC_KEY_PREFIX."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    producer = ContactSyncProducer.from_env(source="env")
    assert producer.keys.prefix == key_prefix
    producer.contact_changed("jon@example.com")
    producer.close()
    (event,) = read_events(redis_client, key_prefix)
    assert event["source"] == "env"


def test_from_env_defaults():
    """Without variables from_env() uses the documented defaults."""
    producer = ContactSyncProducer.from_env()
    kwargs = producer.redis.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)
    assert producer.keys.prefix == "contact-sync"


@pytest.mark.parametrize("module", ["producers", "producers.django", "producers.flask"])
def test_importing_producers_does_not_import_celery(module):
    """Importing the producer side in a fresh interpreter never loads Celery."""
    code = f"import sys, {module}; print('celery' in sys.modules, 'kombu' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_public_names_are_exactly_all():
    """producers.__all__ lists exactly the documented names, and each one is importable."""
    assert sorted(producers.__all__) == [
        "ContactSyncProducer",
        "EnqueueError",
        "InvalidContactEvent",
    ]
    # Submodules (producers.django, ...) become attributes once imported; they are not names.
    public = {
        name
        for name, value in vars(producers).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public -= {"annotations"}  # from __future__ import annotations
    assert public == set(producers.__all__)
    namespace: dict[str, Any] = {}
    exec("from producers import *", namespace)  # noqa: S102 - checks what * really exports
    assert set(producers.__all__) <= set(namespace)


# -- v2: fields by id, %PERSTAG% or title; tags, lists, account ------------------------------


def test_contact_changed_carries_the_whole_footprint(producer, redis_client, key_prefix):
    """fields by id, perstag and title, tags, lists and account go on the wire normalized, as v2."""
    producer.contact_changed(
        "jon@example.com",
        first_name="John",
        fields={6: "x", "%shirt_size%": "L", "Company size": "10-50"},
        tags={"Trial": True, "churned": False},
        lists={"Newsletter": "subscribed", 3: "unsubscribed"},
        account="Acme Inc",
    )
    (event,) = read_events(redis_client, key_prefix)
    assert event["v"] == 2
    assert event["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "fieldValues": [
            {"field": "6", "value": "x"},
            {"field": "%SHIRT_SIZE%", "value": "L"},
            {"field": "Company size", "value": "10-50"},
        ],
        "tags": {"Trial": True, "churned": False},
        "lists": {"Newsletter": "subscribed", "3": "unsubscribed"},
        "account": "Acme Inc",
    }


def test_empty_account_unlinks_and_none_leaves_it_unchanged(producer, redis_client, key_prefix):
    """account="" is sent (it unlinks the company); account=None sends no account at all."""
    producer.contact_changed("a@example.com", account="")
    producer.contact_changed("b@example.com", account=None)
    contacts = [event["contact"] for event in read_events(redis_client, key_prefix)]
    assert contacts == [{"email": "a@example.com", "account": ""}, {"email": "b@example.com"}]


def test_bad_field_messages_name_the_reference_as_given(producer):
    """Errors in fields are keyed by the reference the caller wrote, not by a position."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.contact_changed(
            "jon@example.com",
            fields={6: "ok", "%SHIRT SIZE%": "L", "Birthday": dt.datetime(2026, 1, 1)},
        )
    assert info.value.messages == {
        "fields": {
            "%SHIRT SIZE%": {
                "field": ["Perstag must be letters, digits and underscores between % signs."]
            },
            "Birthday": {"value": ["Datetime values must be timezone-aware."]},
        }
    }


def test_duplicate_references_name_the_field(producer):
    """Two spellings of one perstag are rejected with a message naming it."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.contact_changed("jon@example.com", fields={"%SIZE%": "L", "%size%": "M"})
    assert info.value.messages == {"fields": ["Custom field %SIZE% appears more than once."]}


def test_bad_tags_and_lists_name_the_reference(producer):
    """Errors in tags and lists are keyed by the tag or list as written."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.contact_changed(
            "jon@example.com", tags={"Trial": 1, "ok": True}, lists={0: "subscribed"}
        )
    assert info.value.messages == {
        "tags": {"Trial": ["Must be true (add the tag) or false (remove it)."]},
        "lists": {0: ["List id must be a positive integer."]},
    }


def test_prepare_change_takes_the_same_keywords(producer, redis_client, key_prefix):
    """prepare_change encodes tags, lists and account like contact_changed, without writing."""
    prepared = producer.prepare_change(
        "jon@example.com", tags={"VIP": True}, lists={"7": "subscribed"}, account="Acme"
    )
    assert redis_client.exists(f"{key_prefix}:events") == 0
    assert json.loads(prepared.text)["contact"] == {
        "email": "jon@example.com",
        "tags": {"VIP": True},
        "lists": {"7": "subscribed"},
        "account": "Acme",
    }


def test_send_many_takes_fields_tags_lists_and_account(producer, redis_client, key_prefix):
    """send_many dicts may give fields as a mapping (or fieldValues), tags, lists and account."""
    contacts = [
        {"email": "a@example.com", "fields": {"%SIZE%": "L", 6: ["a", "b"]}, "tags": {"T": True}},
        {"email": "b@example.com", "fieldValues": [{"field": "Title", "value": "x"}]},
        {"email": "c@example.com", "lists": {3: "unsubscribed"}, "account": ""},
    ]
    assert producer.send_many(contacts) == 3
    assert [event["contact"] for event in read_events(redis_client, key_prefix)] == [
        {
            "email": "a@example.com",
            "fieldValues": [
                {"field": "%SIZE%", "value": "L"},
                {"field": "6", "value": "||a||b||"},
            ],
            "tags": {"T": True},
        },
        {"email": "b@example.com", "fieldValues": [{"field": "Title", "value": "x"}]},
        {"email": "c@example.com", "lists": {"3": "unsubscribed"}, "account": ""},
    ]


@pytest.mark.parametrize(
    ("bad_contact", "messages"),
    [
        (
            {"email": "c@example.com", "destination": "eu west"},
            {"destination": ["Must be a destination name: 1 to 64 letters, digits, '_' or "
                             "'-', starting with a letter or digit."]},
        ),
        (
            {"email": "c@example.com", "destination": 7},
            {"destination": ["Must be a destination name: 1 to 64 letters, digits, '_' or "
                             "'-', starting with a letter or digit."]},
        ),
        (
            {"email": "c@example.com", "fields": {1: "x"}, "fieldValues": []},
            {"fields": ["Give fields or fieldValues, not both."]},
        ),
        (
            {"email": "c@example.com", "fields": "6=x"},
            {"fields": ["Must be a mapping of field id, %PERSTAG% or title to value."]},
        ),
        (
            {"email": "c@example.com", "fields": {"": "x"}},
            {"fields": {"": {"field": ["Field title must not be blank."]}}},
        ),
        (
            {"email": "c@example.com", "fieldValues": [{"field": "", "value": "x"}]},
            {"fieldValues": {0: {"field": ["Field title must not be blank."]}}},
        ),
    ],
)  # fmt: skip
def test_send_many_names_what_is_wrong_in_the_callers_terms(
    producer, redis_client, key_prefix, bad_contact, messages
):
    """A destination that is not a name is refused; fields errors are keyed by reference, fieldValues errors by index."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.send_many([{"email": "a@example.com"}, bad_contact])
    assert info.value.messages == {"1": messages}
    assert redis_client.exists(f"{key_prefix}:events") == 0


@pytest.mark.parametrize("not_a_contact", ["fields", ["fields"], None, 7])
def test_send_many_rejects_what_is_not_a_contact(producer, not_a_contact):
    """A str, list, None or number in send_many is an InvalidContactEvent, not a crash."""
    with pytest.raises(InvalidContactEvent) as info:
        producer.send_many([not_a_contact])
    assert list(info.value.messages) == ["0"]


def test_destination_routes_each_event_and_default_is_left_out(producer, redis_client, key_prefix):
    """destination= (or a send_many dict's "destination") goes on the wire as the envelope's
    "destination"; the default destination is left out, so older workers read the event."""
    producer.contact_changed("a@example.com", first_name="A", destination="eu")
    producer.contact_changed("b@example.com", first_name="B")
    producer.send_many(
        [{"email": "c@example.com", "destination": "us"}, {"email": "d@example.com"}]
    )
    events = read_events(redis_client, key_prefix)
    assert [(e["contact"]["email"], e.get("destination")) for e in events] == [
        ("a@example.com", "eu"),
        ("b@example.com", None),
        ("c@example.com", "us"),
        ("d@example.com", None),
    ]
    assert "destination" not in events[2]["contact"]
