"""worker.deadletters: parsing, replay grouping, get/replay/purge against a real Redis."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import redis

from worker.deadletters import DeadLetter, DeadLetters
from worker.keys import Keys
from worker.schema import decode_event
from worker.stamp import order_key

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 11, 29, 13, 0, 0, 123456, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(seconds=5)


def order(when: dt.datetime, entry_id: str = "1764421200000-0") -> str:
    return order_key((when - EPOCH) // dt.timedelta(microseconds=1), entry_id)


def letter(**changes: object) -> DeadLetter:
    fields: dict[str, object] = {
        "id": "1764421300000-0",
        "reason": "api_rejected",
        "email": "jon@example.com",
        "status": 422,
        "errors": ["Email is invalid"],
        "dead_at": T2,
        "attributes": {},
        "raw": None,
        "event_id": None,
        "attempts": 1,
    }
    fields.update(changes)
    return DeadLetter(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> DeadLetters:
    return DeadLetters(redis_client, Keys(key_prefix))


def add_sync_letter(store: DeadLetters, attributes: dict[str, list[str]]) -> str:
    entry_id = store.redis.xadd(
        store.keys.dead,
        {
            "reason": "retry_expired",
            "email": "jon@example.com",
            "status": "503",
            "errors": json.dumps(["Service Unavailable"]),
            "attributes": json.dumps(attributes),
            "attempts": 12,
            "first_attempt_at": 1764421200000,
            "dead_at": 1764507600000,
        },
    )
    return entry_id.decode()


def test_replay_events_group_attributes_by_occurred_at_in_time_order() -> None:
    """Attributes changed at two times replay as two events, the older one first."""
    dead = letter(
        attributes={
            "firstName": ["Jon", order(T2)],
            "lastName": ["Doe", order(T1, "1764421200000-1")],
            "field:6": ["2008-01-20", order(T1, "1764421200000-2")],
        }
    )

    events = [decode_event(fields["event"]) for fields in dead.replay_events()]

    assert [event.occurred_at for event in events] == [T1, T2]
    assert events[0].attributes == {"lastName": "Doe", "field:6": "2008-01-20"}
    assert events[1].attributes == {"firstName": "Jon"}
    assert {event.email for event in events} == {"jon@example.com"}
    assert {event.source for event in events} == {f"replay:{dead.id}"}


def test_replay_events_keep_an_empty_string_value() -> None:
    """An attribute cleared to "" replays as "", a real value, not as "unchanged"."""
    dead = letter(attributes={"phone": ["", order(T1)]})

    (fields,) = dead.replay_events()

    assert decode_event(fields["event"]).attributes == {"phone": ""}


def test_replay_events_of_an_invalid_event_resend_the_raw_entry() -> None:
    """An invalid-event letter replays its raw text unchanged."""
    dead = letter(reason="invalid_event", email=None, raw='{"v": 1}', errors={"id": ["x"]})

    assert dead.replay_events() == [{"event": '{"v": 1}'}]


def test_replay_events_without_raw_or_email_are_empty() -> None:
    """A letter with neither raw text nor an email has nothing to replay."""
    assert letter(email=None).replay_events() == []


def test_parse_reads_the_shape_finish_lua_writes(store: DeadLetters) -> None:
    """A sync dead letter parses with status, attempts, times and per-attribute occurred_at."""
    letter_id = add_sync_letter(store, {"firstName": ["Jon", order(T1)]})

    dead = store.get(letter_id)

    assert dead is not None
    assert (dead.reason, dead.status, dead.attempts) == ("retry_expired", 503, 12)
    assert dead.errors == ["Service Unavailable"]
    assert dead.first_attempt_at == EPOCH + dt.timedelta(milliseconds=1764421200000)
    assert dead.attribute_occurred_at() == {"firstName": T1}
    assert dead.as_dict()["attributes"] == {"firstName": "Jon"}
    assert dead.as_dict()["attributes_occurred_at"] == {"firstName": T1.isoformat()}


def test_parse_tolerates_corrupt_attributes(store: DeadLetters) -> None:
    """Attributes that are not a JSON object read as none, rather than breaking a listing."""
    store.redis.xadd(store.keys.dead, {"reason": "api_rejected", "attributes": "{oops"})

    (dead,) = store.list()

    assert dead.attributes == {}


def test_get_needs_an_exact_full_id(store: DeadLetters) -> None:
    """get() finds a letter only by its full id; partial or malformed ids are not found."""
    letter_id = add_sync_letter(store, {"firstName": ["Jon", order(T1)]})
    millis = letter_id.split("-")[0]

    assert store.get(letter_id) is not None
    assert store.get(millis) is None
    assert store.get("not-an-id") is None


def test_replay_moves_each_letter_to_the_events_stream(store: DeadLetters) -> None:
    """replay() adds the events, deletes exactly the replayed letter and reports per id."""
    replayed = add_sync_letter(store, {"firstName": ["Jon", order(T1)]})
    kept = add_sync_letter(store, {"lastName": ["Doe", order(T1)]})

    results = store.replay([replayed, "1-1", "bogus"])

    assert results == {replayed: "replayed", "1-1": "not found", "bogus": "not found"}
    assert [letter.id for letter in store.list()] == [kept]
    assert store.redis.xlen(store.keys.events) == 1


def test_list_filters_by_reason_and_limits(store: DeadLetters) -> None:
    """list() is oldest first, at most `limit`, and applies the reason before the limit."""
    store.redis.xadd(store.keys.dead, {"reason": "invalid_event", "raw": "x"})
    first = add_sync_letter(store, {})
    second = add_sync_letter(store, {})

    assert [dead.reason for dead in store.list(limit=2)] == ["invalid_event", "retry_expired"]
    assert [dead.id for dead in store.list(limit=2, reason="retry_expired")] == [first, second]


def test_purge_counts_what_it_deleted(store: DeadLetters) -> None:
    """purge(ids) deletes those (ignoring malformed ids); purge_all() deletes and counts all."""
    one = add_sync_letter(store, {})
    add_sync_letter(store, {})
    add_sync_letter(store, {})

    assert store.purge([one, "nonsense", "1-1"]) == 1
    assert store.purge_all() == 2
    assert store.count() == 0


# -- destinations ---------------------------------------------------------------------------


def test_replay_events_go_to_the_destination_given() -> None:
    """A sync letter's changes are re-encoded for the destination given; default's carry
    no destination at all, as producers write them."""
    dead = letter(attributes={"firstName": ["Jon", order(T1)]})

    (to_b,) = dead.replay_events("b")
    (to_default,) = dead.replay_events()

    assert json.loads(to_b["event"])["destination"] == "b"
    assert decode_event(to_b["event"]).destination == "b"
    assert "destination" not in json.loads(to_default["event"])


def test_replay_of_a_destinations_letter_goes_back_to_it(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """DeadLetters of destination b reads b's stream only, and replays onto the shared
    events stream an event naming b."""
    default = DeadLetters(redis_client, Keys(key_prefix))
    b = DeadLetters(redis_client, Keys(key_prefix, "b"))
    letter_id = add_sync_letter(b, {"firstName": ["Jon", order(T1)]})
    add_sync_letter(default, {"lastName": ["Doe", order(T1)]})

    assert [dead.id for dead in b.list()] == [letter_id]
    assert b.replay([letter_id]) == {letter_id: "replayed"}

    ((_, fields),) = redis_client.xrange(Keys(key_prefix).events)
    event = decode_event(fields[b"event"].decode())
    assert (event.destination, event.attributes) == ("b", {"firstName": "Jon"})
    assert (b.count(), default.count()) == (0, 1)


def test_replay_of_an_unknown_destination_letter_resends_the_raw_event(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """An unknown_destination letter (in default's stream) replays its event text as it was
    written, still naming the destination it named."""
    default = DeadLetters(redis_client, Keys(key_prefix))
    raw = json.dumps({"v": 2, "id": "e-1", "destination": "c", "contact": {}})
    letter_id = redis_client.xadd(
        Keys(key_prefix).dead, {"reason": "unknown_destination", "raw": raw}
    ).decode()

    assert default.replay([letter_id]) == {letter_id: "replayed"}

    ((_, fields),) = redis_client.xrange(Keys(key_prefix).events)
    assert fields == {b"event": raw.encode()}
