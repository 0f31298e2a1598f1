"""worker.schema: validation, normalization and the wire format (v2, and v1 still read), including hostile input."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.errors import InvalidContactEvent
from worker.schema import (
    MAX_EVENT_BYTES,
    ContactEvent,
    attributes_to_event_contact,
    contact_to_attributes,
    decode_event,
    encode_event,
    normalize_contact,
    sync_contact_body,
)

WHEN = dt.datetime(2026, 11, 29, 13, 0, 0, 123456, tzinfo=dt.UTC)
EVENT_ID = "0b8f5a52-3c8e-4d7c-9f43-2d5d7a1d4b10"


def wire(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "v": 1,
        "id": EVENT_ID,
        "occurred_at": "2026-11-29T13:00:00.123456+00:00",
        "source": "django:billing",
        "contact": {"email": "jondoe@example.com", "firstName": "John"},
    }
    document.update(changes)
    return document


def messages_of(contact: dict[str, Any]) -> Any:
    with pytest.raises(InvalidContactEvent) as caught:
        normalize_contact(contact)
    return caught.value.messages


def decode_messages(document: Any) -> Any:
    with pytest.raises(InvalidContactEvent) as caught:
        decode_event(json.dumps(document))
    return caught.value.messages


def test_valid_event_round_trips() -> None:
    """encode_event then decode_event gives back id, time, source, email and flat attributes."""
    contact = {
        "email": "jondoe@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "phone": "7223224241",
        "fieldValues": [{"field": "1", "value": "The Value"}, {"field": 6, "value": "2008-01-20"}],
    }
    event_id, text = encode_event(
        contact, occurred_at=WHEN, source="django:billing", event_id=EVENT_ID
    )
    event = decode_event(text)
    assert event_id == EVENT_ID
    assert event == ContactEvent(
        id=EVENT_ID,
        occurred_at=WHEN,
        source="django:billing",
        email="jondoe@example.com",
        attributes={
            "firstName": "John",
            "lastName": "Doe",
            "phone": "7223224241",
            "field:1": "The Value",
            "field:6": "2008-01-20",
        },
    )
    assert sync_contact_body(event.email, event.attributes.items()) == {
        "email": "jondoe@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "phone": "7223224241",
        "fieldValues": [
            {"field": "1", "value": "The Value"},
            {"field": "6", "value": "2008-01-20"},
        ],
    }


def test_encode_event_writes_the_documented_wire_shape() -> None:
    """The encoded text is a compact v2 JSON object with a generated uuid4 id by default."""
    event_id, text = encode_event({"email": "jon@example.com"}, occurred_at=WHEN)
    assert text.startswith('{"v":2,')
    document = json.loads(text)
    assert document == {
        "v": 2,
        "id": event_id,
        "occurred_at": "2026-11-29T13:00:00.123456+00:00",
        "contact": {"email": "jon@example.com"},
    }
    assert uuid.UUID(event_id).version == 4


def test_occurred_at_defaults_to_now_in_utc() -> None:
    """Without occurred_at the event is stamped with the current UTC time."""
    before = dt.datetime.now(dt.UTC)
    _, text = encode_event({"email": "jon@example.com"})
    event = decode_event(text)
    assert before <= event.occurred_at <= dt.datetime.now(dt.UTC)
    assert event.occurred_at_us == (event.occurred_at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // (
        dt.timedelta(microseconds=1)
    )


def test_encode_rejects_naive_occurred_at() -> None:
    """A naive occurred_at raises InvalidContactEvent on occurred_at."""
    with pytest.raises(InvalidContactEvent) as caught:
        encode_event({"email": "jon@example.com"}, occurred_at=dt.datetime(2026, 1, 1))
    assert "occurred_at" in caught.value.messages


def test_encode_rejects_overlong_source() -> None:
    """A source longer than 255 characters raises InvalidContactEvent on source."""
    with pytest.raises(InvalidContactEvent) as caught:
        encode_event({"email": "jon@example.com"}, source="s" * 256)
    assert "source" in caught.value.messages


def test_invalid_contact_event_is_a_value_error() -> None:
    """InvalidContactEvent is a ValueError carrying marshmallow's per-field messages."""
    with pytest.raises(ValueError, match="invalid contact event"):
        normalize_contact({"email": "not-an-email"})


def test_email_is_trimmed_and_lower_cased() -> None:
    """The email identity is trimmed and lower-cased."""
    assert normalize_contact({"email": "  Jon.Doe@Example.COM \n"}) == {
        "email": "jon.doe@example.com"
    }


@pytest.mark.parametrize("email", ["", "jon", "jon@", "@example.com", "jon doe@example.com"])
def test_invalid_email_is_rejected(email: str) -> None:
    """An email that is not an address is rejected on email."""
    assert "email" in messages_of({"email": email})


def test_missing_email_is_rejected() -> None:
    """A contact without email is rejected on email."""
    assert "email" in messages_of({"firstName": "John"})


def test_email_over_255_characters_is_rejected() -> None:
    """An email longer than 255 characters is rejected with a length message."""
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".com"
    assert len(email) > 255
    assert messages_of({"email": email}) == {"email": ["Longer than maximum length 255."]}


@pytest.mark.parametrize("name", ["firstName", "lastName", "phone"])
def test_text_attributes_over_255_characters_are_rejected(name: str) -> None:
    """firstName, lastName and phone longer than 255 characters are rejected by name."""
    normalize_contact({"email": "jon@example.com", name: "x" * 255})
    assert name in messages_of({"email": "jon@example.com", name: "x" * 256})


@pytest.mark.parametrize("name", ["firstName", "lastName", "phone"])
def test_text_attributes_must_be_strings(name: str) -> None:
    """A number or null where a string belongs is rejected by name."""
    assert name in messages_of({"email": "jon@example.com", name: 7223224241})
    assert name in messages_of({"email": "jon@example.com", name: None})


def test_empty_string_is_a_real_value() -> None:
    """\"\" is kept as a value (it clears the attribute), unlike an absent attribute."""
    _, text = encode_event(
        {"email": "jon@example.com", "firstName": "", "fieldValues": [{"field": 3, "value": ""}]},
        occurred_at=WHEN,
    )
    assert decode_event(text).attributes == {"firstName": "", "field:3": ""}


def test_more_than_500_field_values_are_rejected() -> None:
    """At most 500 custom field values are accepted in one contact."""
    values = [{"field": str(n), "value": "x"} for n in range(1, 501)]
    assert (
        len(normalize_contact({"email": "jon@example.com", "fieldValues": values})["fieldValues"])
        == 500
    )
    values.append({"field": "501", "value": "x"})
    assert "fieldValues" in messages_of({"email": "jon@example.com", "fieldValues": values})


@pytest.mark.parametrize(
    ("field", "expected"), [(6, "6"), ("6", "6"), (" 42 ", "42"), ("007", "7")]
)
def test_field_id_may_be_an_int_or_a_digit_string(field: Any, expected: str) -> None:
    """A custom field id is a positive int or a string of digits, normalized to its decimal form."""
    loaded = normalize_contact(
        {"email": "jon@example.com", "fieldValues": [{"field": field, "value": "x"}]}
    )
    assert loaded["fieldValues"] == [{"field": expected, "value": "x"}]


@pytest.mark.parametrize("field", [0, -1, "0", "000", " 0 ", True, False, 2**63, str(2**63)])
def test_bad_field_ids_are_rejected(field: Any) -> None:
    """Zero, negatives, booleans and ids from 2**63 are rejected as ids (digits always mean an id)."""
    messages = messages_of(
        {"email": "jon@example.com", "fieldValues": [{"field": field, "value": "x"}]}
    )
    assert messages == {"fieldValues": {0: {"field": ["Field id must be a positive integer."]}}}


@pytest.mark.parametrize(
    "field", [0, -1, "0", "-3", "abc", "1.5", 1.0, True, False, "٣", 2**63, "%A%"]
)
def test_v1_field_ids_must_still_be_positive_integers(field: Any) -> None:
    """In a v1 event, a field is named by id only: anything else is rejected as before."""
    contact = {"email": "jon@example.com", "fieldValues": [{"field": field, "value": "x"}]}
    assert decode_messages(wire(contact=contact)) == {
        "contact": {"fieldValues": {0: {"field": ["Field id must be a positive integer."]}}}
    }


def test_null_field_id_is_rejected() -> None:
    """A null custom field id is rejected on field."""
    messages = messages_of(
        {"email": "jon@example.com", "fieldValues": [{"field": None, "value": "x"}]}
    )
    assert messages == {"fieldValues": {0: {"field": ["Field may not be null."]}}}


def test_duplicate_field_ids_are_rejected() -> None:
    """The same custom field twice (even spelled differently) is rejected with its id."""
    messages = messages_of(
        {
            "email": "jon@example.com",
            "fieldValues": [{"field": 6, "value": "a"}, {"field": "6", "value": "b"}],
        }
    )
    assert messages == {"fieldValues": ["Custom field 6 appears more than once."]}


def test_field_value_entries_reject_unknown_keys_and_missing_value() -> None:
    """A field value item needs exactly field and value."""
    messages = messages_of(
        {"email": "jon@example.com", "fieldValues": [{"field": 1, "value": "x", "extra": 1}]}
    )
    assert "extra" in messages["fieldValues"][0]
    messages = messages_of({"email": "jon@example.com", "fieldValues": [{"field": 1}]})
    assert "value" in messages["fieldValues"][0]


def field_value(value: Any) -> str:
    loaded = normalize_contact(
        {"email": "jon@example.com", "fieldValues": [{"field": 1, "value": value}]}
    )
    return str(loaded["fieldValues"][0]["value"])


def test_list_value_becomes_the_multi_value_format() -> None:
    """A list of options becomes ||a||b||; an empty list clears the field."""
    assert field_value(["Option 1", "Option 3"]) == "||Option 1||Option 3||"
    assert field_value(("a",)) == "||a||"
    assert field_value([]) == ""


def test_list_values_must_be_plain_strings_without_separator() -> None:
    """List items must be strings and must not contain the || separator."""
    with pytest.raises(InvalidContactEvent):
        field_value(["a", 1])
    with pytest.raises(InvalidContactEvent):
        field_value(["a||b"])


def test_date_value_becomes_iso_date() -> None:
    """A date becomes YYYY-MM-DD."""
    assert field_value(dt.date(2008, 1, 20)) == "2008-01-20"


def test_aware_datetime_value_keeps_its_offset() -> None:
    """An aware datetime becomes ISO-8601 with its offset."""
    moment = dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert field_value(moment) == "2026-11-29T13:05:00+02:00"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (dt.datetime(2026, 11, 29, 13, 5, 7, 999_999, tzinfo=dt.UTC), "2026-11-29T13:05:07+00:00"),
        (
            dt.datetime(2020, 5, 19, 2, 45, 0, 1, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
            "2020-05-19T02:45:00-05:00",
        ),
        (
            dt.datetime(
                2026, 1, 2, 3, 4, 5, 500_000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
            ),
            "2026-01-02T03:04:05+05:30",
        ),
        (dt.datetime(999, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "0999-01-02T03:04:05+00:00"),
    ],
)
def test_aware_datetime_value_is_sent_in_whole_seconds(moment: dt.datetime, expected: str) -> None:
    """Microseconds are cut (never rounded up) and the offset is kept as +HH:MM."""
    assert field_value(moment) == expected


def test_datetime_with_a_sub_minute_offset_is_sent_in_utc() -> None:
    """An offset with seconds (local mean time) has no +HH:MM form, so the same moment goes in UTC."""
    amsterdam_mean_time = dt.timezone(dt.timedelta(minutes=19, seconds=32))
    moment = dt.datetime(1890, 6, 1, 12, 0, 0, 250_000, tzinfo=amsterdam_mean_time)
    assert field_value(moment) == "1890-06-01T11:40:28+00:00"


def test_datetime_that_does_not_fit_in_utc_is_rejected() -> None:
    """A sub-minute offset on the first day of year 1 cannot be moved to UTC and is refused, not raised."""
    moment = dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(seconds=30)))
    messages = messages_of(
        {"email": "jon@example.com", "fieldValues": [{"field": 1, "value": moment}]}
    )
    assert messages == {"fieldValues": {0: {"value": ["Datetime is out of range."]}}}


def test_naive_datetime_value_is_rejected() -> None:
    """A naive datetime value is rejected with a message about time zones."""
    messages = messages_of(
        {
            "email": "jon@example.com",
            "fieldValues": [{"field": 1, "value": dt.datetime(2026, 11, 29, 13, 5)}],
        }
    )
    assert messages == {"fieldValues": {0: {"value": ["Datetime values must be timezone-aware."]}}}


@pytest.mark.parametrize("value", [None, 5, 1.5, {"a": 1}, True])
def test_other_value_types_are_rejected(value: Any) -> None:
    """Null, numbers, objects and booleans are not field values."""
    with pytest.raises(InvalidContactEvent):
        field_value(value)


def test_overlong_field_value_is_rejected() -> None:
    """A single custom field value over 16 KiB characters is rejected."""
    field_value("x" * 16 * 1024)
    with pytest.raises(InvalidContactEvent):
        field_value("x" * (16 * 1024 + 1))


def test_unknown_attribute_is_named() -> None:
    """An attribute the API does not document is rejected under its own name."""
    assert messages_of({"email": "jon@example.com", "nickname": "Jonny"}) == {
        "nickname": ["Unknown field."]
    }


def test_orgid_is_rejected_with_its_deprecation() -> None:
    """orgid is rejected with a message pointing to the Account-Contact endpoints."""
    (message,) = messages_of({"email": "jon@example.com", "orgid": 3})["orgid"]
    assert "deprecated" in message
    assert "Account-Contact" in message


def test_deleted_is_rejected_with_its_deprecation() -> None:
    """deleted is rejected with a message that says to use DELETE."""
    (message,) = messages_of({"email": "jon@example.com", "deleted": 1})["deleted"]
    assert "deprecated" in message
    assert "DELETE" in message


def test_contact_must_be_an_object() -> None:
    """A contact that is not a mapping is rejected, not crashed on."""
    with pytest.raises(InvalidContactEvent):
        normalize_contact(["jon@example.com"])  # type: ignore[arg-type]


def test_decode_accepts_the_documented_example() -> None:
    """The DESIGN.md wire example decodes to the expected event."""
    event = decode_event(
        json.dumps(
            wire(
                contact={
                    "email": "jondoe@example.com",
                    "firstName": "John",
                    "lastName": "Doe",
                    "phone": "7223224241",
                    "fieldValues": [
                        {"field": "1", "value": "The Value"},
                        {"field": "6", "value": "2008-01-20"},
                    ],
                }
            )
        ).encode("utf-8")
    )
    assert event.id == EVENT_ID
    assert event.occurred_at == WHEN
    assert event.source == "django:billing"
    assert event.attributes["field:6"] == "2008-01-20"


@pytest.mark.parametrize("v", [0, 3, -1, "1", "2", 1.0, 2.0, True, None])
def test_wire_version_must_be_exactly_1_or_2(v: Any) -> None:
    """v must be the integer 1 or 2: other numbers, strings, floats and booleans are rejected."""
    assert "v" in decode_messages(wire(v=v))


def test_v1_events_are_still_accepted() -> None:
    """A v1 event left in the stream by a rolling upgrade decodes exactly as before."""
    event = decode_event(json.dumps(wire()))
    assert (event.email, event.attributes) == ("jondoe@example.com", {"firstName": "John"})


@pytest.mark.parametrize("name", ["tags", "lists", "account"])
def test_v1_events_have_no_tags_lists_or_account(name: str) -> None:
    """tags, lists and account are v2 keys: a v1 event carrying one is rejected naming it."""
    value = {"tags": {"Trial": True}, "lists": {"3": "subscribed"}, "account": "Acme"}[name]
    contact = {"email": "jon@example.com", name: value}
    assert decode_messages(wire(contact=contact)) == {"contact": {name: ["Unknown field."]}}
    assert decode_event(json.dumps(wire(v=2, contact=contact))).attributes


def test_wire_version_is_required() -> None:
    """An event without v is rejected on v."""
    document = wire()
    del document["v"]
    assert "v" in decode_messages(document)


@pytest.mark.parametrize("ident", ["not-a-uuid", "", 12, None])
def test_wire_id_must_be_a_uuid(ident: Any) -> None:
    """id must be a UUID string."""
    assert "id" in decode_messages(wire(id=ident))


@pytest.mark.parametrize("when", ["2026-11-29T13:00:00", "yesterday", "", 1764421200, None])
def test_wire_occurred_at_must_be_aware(when: Any) -> None:
    """occurred_at must be an ISO-8601 date-time with an offset."""
    assert "occurred_at" in decode_messages(wire(occurred_at=when))


def test_wire_occurred_at_keeps_other_offsets() -> None:
    """An occurred_at in another offset decodes to the same instant."""
    event = decode_event(json.dumps(wire(occurred_at="2026-11-29T15:00:00.123456+02:00")))
    assert event.occurred_at == WHEN


def test_wire_source_is_optional() -> None:
    """source may be absent or null; it is then None."""
    document = wire()
    del document["source"]
    assert decode_event(json.dumps(document)).source is None
    assert decode_event(json.dumps(wire(source=None))).source is None


def test_wire_source_is_bounded() -> None:
    """A source longer than 255 characters is rejected on source."""
    assert "source" in decode_messages(wire(source="s" * 256))


def test_wire_rejects_unknown_envelope_keys() -> None:
    """An unknown top-level key is rejected under its own name."""
    assert decode_messages(wire(priority="high")) == {"priority": ["Unknown field."]}


def test_wire_contact_is_validated_like_a_producer_contact() -> None:
    """The worker re-validates the contact: a bad email inside a wire event is rejected."""
    messages = decode_messages(wire(contact={"email": "nope"}))
    assert "email" in messages["contact"]


def test_encode_rejects_events_over_64_kib() -> None:
    """encode_event refuses an event whose JSON exceeds 64 KiB."""
    values = [{"field": n, "value": "x" * 16 * 1024} for n in range(1, 6)]
    with pytest.raises(InvalidContactEvent) as caught:
        encode_event({"email": "jon@example.com", "fieldValues": values}, occurred_at=WHEN)
    assert "limit is 65536" in caught.value.messages["_event"][0]


def test_encode_counts_bytes_not_characters() -> None:
    """The 64 KiB limit is on UTF-8 bytes, so multi-byte text reaches it sooner."""
    values = [{"field": n, "value": "é" * 8 * 1024} for n in range(1, 5)]
    assert len(json.dumps(values, ensure_ascii=False)) < MAX_EVENT_BYTES
    with pytest.raises(InvalidContactEvent):
        encode_event({"email": "jon@example.com", "fieldValues": values}, occurred_at=WHEN)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_decode_rejects_events_over_64_kib(as_bytes: bool) -> None:
    """decode_event refuses over-sized input before parsing it, as text or bytes."""
    document = wire(source="s" * 10)
    document["contact"]["phone"] = "1"
    text = json.dumps(document)
    text = text[:-1] + " " * (MAX_EVENT_BYTES + 1 - len(text)) + "}"
    with pytest.raises(InvalidContactEvent) as caught:
        decode_event(text.encode("utf-8") if as_bytes else text)
    assert "limit is 65536" in caught.value.messages["_event"][0]


def test_decode_measures_text_in_utf8_bytes() -> None:
    """A str under 64 Ki characters but over 64 KiB in UTF-8 is rejected."""
    text = json.dumps(wire(source="é" * 40_000), ensure_ascii=False)
    assert len(text) < MAX_EVENT_BYTES < len(text.encode("utf-8"))
    with pytest.raises(InvalidContactEvent):
        decode_event(text)


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "{", b"\xff\xfe\x00garbage", "NaN", '{"v": 1,}', "\ud800"],
)
def test_decode_rejects_text_that_is_not_json(raw: str | bytes) -> None:
    """Empty, truncated, non-UTF-8 or otherwise broken JSON is an InvalidContactEvent."""
    with pytest.raises(InvalidContactEvent):
        decode_event(raw)


@pytest.mark.parametrize("raw", ["[]", "1", '"event"', "null", "true"])
def test_decode_rejects_json_that_is_not_an_object(raw: str) -> None:
    """A JSON array, number, string, null or boolean is rejected as not an object."""
    with pytest.raises(InvalidContactEvent) as caught:
        decode_event(raw)
    assert caught.value.messages == {"_event": ["An event must be a JSON object."]}


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_an_invalid_event_not_a_recursion_error(opener: str) -> None:
    """JSON nested deeper than the interpreter can recurse is rejected, not crashed on."""
    raw = opener * (MAX_EVENT_BYTES // len(opener) - 1)
    with pytest.raises(InvalidContactEvent):
        decode_event(raw)


def test_nesting_inside_a_valid_envelope_is_rejected() -> None:
    """Deeply nested values inside the contact are rejected as bad values."""
    deep: Any = "x"
    for _ in range(500):
        deep = [deep]
    document = wire(
        contact={"email": "jon@example.com", "fieldValues": [{"field": 1, "value": deep}]}
    )
    with pytest.raises(InvalidContactEvent):
        decode_event(json.dumps(document))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# Documents close to a valid event, so that hypothesis explores the schema, not just the parser.
near_events = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), json_values),
        "id": st.one_of(st.just(EVENT_ID), st.uuids().map(str), json_values),
        "occurred_at": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), json_values
        ),
        "contact": st.one_of(
            st.fixed_dictionaries(
                {"email": st.one_of(st.emails(), st.text(max_size=40), json_values)},
                optional={
                    "firstName": json_values,
                    "phone": json_values,
                    "orgid": json_values,
                    "fieldValues": st.one_of(
                        st.lists(
                            st.fixed_dictionaries(
                                {"field": json_values, "value": json_values},
                                optional={"extra": json_values},
                            ),
                            max_size=4,
                        ),
                        json_values,
                    ),
                },
            ),
            json_values,
        ),
    },
    optional={"source": json_values, "extra": json_values},
)


def _decode_never_crashes(raw: str | bytes) -> None:
    try:
        result = decode_event(raw)
    except InvalidContactEvent:
        return
    assert isinstance(result, ContactEvent)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        json_values.map(json.dumps),
        near_events.map(json.dumps),
        near_events.map(lambda d: json.dumps(d).encode("utf-8")),
    )
)
def test_decode_event_only_ever_raises_invalid_contact_event(raw: str | bytes) -> None:
    """decode_event on arbitrary text, bytes or JSON returns a ContactEvent or raises InvalidContactEvent."""
    _decode_never_crashes(raw)


# -- v2: fields by id, %PERSTAG% or title; tags, lists, account ------------------------------

DOCUMENTED_V2 = {
    "email": "jon@example.com",
    "firstName": "John",
    "lastName": "Doe",
    "phone": "7223224241",
    "fieldValues": [
        {"field": "6", "value": "x"},
        {"field": "%SHIRT_SIZE%", "value": "L"},
        {"field": "Company size", "value": "10-50"},
    ],
    "tags": {"Trial": True, "churned": False},
    "lists": {"Newsletter": "subscribed", "3": "unsubscribed"},
    "account": "Acme Inc",
}
DOCUMENTED_V2_ATTRIBUTES = {
    "firstName": "John",
    "lastName": "Doe",
    "phone": "7223224241",
    "field:6": "x",
    "field:%SHIRT_SIZE%": "L",
    "field:Company size": "10-50",
    "tag:Trial": "1",
    "tag:churned": "0",
    "list:Newsletter": "1",
    "list:3": "2",
    "account": "Acme Inc",
}


def v2_messages(**contact: Any) -> Any:
    """The messages for a v2 contact of jon@example.com with ``contact`` added."""
    return messages_of({"email": "jon@example.com", **contact})


def test_documented_v2_example_decodes_to_flat_attributes() -> None:
    """The documented v2 event decodes to one attribute per field, tag, list and the account."""
    event = decode_event(json.dumps(wire(v=2, contact=DOCUMENTED_V2)))
    assert event.email == "jon@example.com"
    assert event.attributes == DOCUMENTED_V2_ATTRIBUTES


def test_v2_encode_decode_round_trips_every_attribute_kind() -> None:
    """encode_event writes the documented v2 contact unchanged, and decode_event reads it back."""
    _, text = encode_event(DOCUMENTED_V2, occurred_at=WHEN, event_id=EVENT_ID)
    assert json.loads(text)["contact"] == DOCUMENTED_V2
    assert decode_event(text).attributes == DOCUMENTED_V2_ATTRIBUTES


def test_email_only_v2_event_is_valid() -> None:
    """A v2 event that carries only the email is valid, as in v1: it has no attributes."""
    event = decode_event(json.dumps(wire(v=2, contact={"email": "jon@example.com"})))
    assert event.attributes == {}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (6, "6"),
        (" 007 ", "7"),
        ("%shirt_size%", "%SHIRT_SIZE%"),
        (" %Shirt_Size_2% ", "%SHIRT_SIZE_2%"),
        ("  Company size ", "Company size"),
        ("50% off", "50% off"),
        ("%discount", "%discount"),
        ("-3", "-3"),
        ("1.5", "1.5"),
        ("x" * 255, "x" * 255),
    ],
)
def test_v2_field_references_are_normalized(field: Any, expected: str) -> None:
    """Ids become their digits, perstags upper case inside the % signs, titles trimmed."""
    loaded = normalize_contact(
        {"email": "jon@example.com", "fieldValues": [{"field": field, "value": "v"}]}
    )
    assert loaded["fieldValues"] == [{"field": expected, "value": "v"}]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("%SHIRT SIZE%", "Perstag must be letters, digits and underscores between % signs."),
        ("%", "Perstag must be letters, digits and underscores between % signs."),
        ("%%", "Perstag must be letters, digits and underscores between % signs."),
        ("%TAILLE_É%", "Perstag must be letters, digits and underscores between % signs."),
        ("%" + "A" * 254 + "%", "Perstag is longer than maximum length 255."),
        ("", "Field title must not be blank."),
        ("   ", "Field title must not be blank."),
        ("x" * 256, "Field title is longer than maximum length 255."),
        ("Company\nsize", "Field title must not contain control characters."),
        ("a\x85b", "Field title must not contain control characters."),
        (1.0, "Field must be an id, a %PERSTAG% or a title."),
        (["6"], "Field must be an id, a %PERSTAG% or a title."),
    ],
)
def test_bad_v2_field_references_are_rejected(field: Any, message: str) -> None:
    """A malformed perstag, a blank, overlong or control-character title, or a non-string is rejected."""
    assert v2_messages(fieldValues=[{"field": field, "value": "v"}]) == {
        "fieldValues": {0: {"field": [message]}}
    }


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [
        (6, "006", "6"),
        ("%SHIRT_SIZE%", "%shirt_size%", "%SHIRT_SIZE%"),
        ("Company size", " company SIZE", "company SIZE"),
    ],
)
def test_duplicate_v2_field_references_are_rejected(first: Any, second: Any, named: str) -> None:
    """Two references that are textually equal (ignoring case for perstags and titles) are an error naming the second."""
    values = [{"field": first, "value": "a"}, {"field": second, "value": "b"}]
    assert v2_messages(fieldValues=values) == {
        "fieldValues": [f"Custom field {named} appears more than once."]
    }


def test_different_spellings_of_one_field_are_left_to_the_worker() -> None:
    """An id and a perstag may name the same field; only the catalog can tell, so both are kept."""
    values = [{"field": 6, "value": "a"}, {"field": "%SIX%", "value": "b"}]
    assert (
        len(normalize_contact({"email": "a@example.com", "fieldValues": values})["fieldValues"])
        == 2
    )


def test_tags_are_trimmed_names_to_booleans() -> None:
    """Tag names are trimmed, keep their case, and map to true (add) or false (remove)."""
    loaded = normalize_contact({"email": "a@example.com", "tags": {" Trial ": True, "VIP": False}})
    assert loaded["tags"] == {"Trial": True, "VIP": False}
    assert contact_to_attributes(loaded) == {"tag:Trial": "1", "tag:VIP": "0"}


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"": True}, {"tags": {"": ["Tag name must not be blank."]}}),
        ({" ": True}, {"tags": {" ": ["Tag name must not be blank."]}}),
        ({"t" * 256: True}, {"tags": {"t" * 256: ["Tag name is longer than maximum length 255."]}}),
        ({"a\tb": True}, {"tags": {"a\tb": ["Tag name must not contain control characters."]}}),
        ({7: True}, {"tags": {7: ["Tag name must be a string."]}}),
        ({"Trial": 1}, {"tags": {"Trial": ["Must be true (add the tag) or false (remove it)."]}}),
        ({"Trial": "true"}, {"tags": {"Trial": ["Must be true (add the tag) or false (remove it)."]}}),
        ({"Trial": None}, {"tags": {"Trial": ["Must be true (add the tag) or false (remove it)."]}}),
        ({"Trial": True, "TRIAL ": False}, {"tags": {"TRIAL ": ["Tag TRIAL appears more than once."]}}),
        (["Trial"], {"tags": ["Must be an object of tag name to true (add) or false (remove)."]}),
        ("Trial", {"tags": ["Must be an object of tag name to true (add) or false (remove)."]}),
        (None, {"tags": ["Field may not be null."]}),
    ],
)  # fmt: skip
def test_bad_tags_are_rejected_naming_the_tag(tags: Any, expected: Any) -> None:
    """A blank, overlong or control-character name, a non-boolean, a duplicate ignoring case, or a non-object is rejected, keyed by the tag as written."""
    assert v2_messages(tags=tags) == expected


def test_more_than_500_tags_are_rejected() -> None:
    """At most 500 tags are accepted in one event: each one is an API request."""
    tags = {f"t{n}": True for n in range(500)}
    assert len(normalize_contact({"email": "a@example.com", "tags": tags})["tags"]) == 500
    tags["one more"] = False
    assert v2_messages(tags=tags) == {"tags": ["At most 500 items in one event."]}


def test_lists_are_ids_or_names_to_a_status() -> None:
    """List ids (int or digits) become their digits, names are trimmed; statuses become 1 and 2."""
    loaded = normalize_contact(
        {
            "email": "a@example.com",
            "lists": {3: "subscribed", "007": "unsubscribed", " Newsletter ": "subscribed"},
        }
    )
    assert loaded["lists"] == {"3": "subscribed", "7": "unsubscribed", "Newsletter": "subscribed"}
    assert contact_to_attributes(loaded) == {"list:3": "1", "list:7": "2", "list:Newsletter": "1"}


@pytest.mark.parametrize(
    ("lists", "expected"),
    [
        ({"0": "subscribed"}, {"lists": {"0": ["List id must be a positive integer."]}}),
        ({0: "subscribed"}, {"lists": {0: ["List id must be a positive integer."]}}),
        ({True: "subscribed"}, {"lists": {True: ["List id must be a positive integer."]}}),
        ({"": "subscribed"}, {"lists": {"": ["List name must not be blank."]}}),
        ({"News\x00": "subscribed"}, {"lists": {"News\x00": ["List name must not contain control characters."]}}),
        ({"News": "Subscribed"}, {"lists": {"News": ['Must be "subscribed" or "unsubscribed".']}}),
        ({"News": True}, {"lists": {"News": ['Must be "subscribed" or "unsubscribed".']}}),
        ({"3": "subscribed", 3: "unsubscribed"}, {"lists": {3: ["List 3 appears more than once."]}}),
        ({"News": "subscribed", "news": "unsubscribed"}, {"lists": {"news": ["List news appears more than once."]}}),
        (["News"], {"lists": ['Must be an object of list id or name to "subscribed" or "unsubscribed".']}),
    ],
)  # fmt: skip
def test_bad_lists_are_rejected_naming_the_list(lists: Any, expected: Any) -> None:
    """A bad id or name, a status other than subscribed or unsubscribed, or a duplicate is rejected, keyed by the list as written."""
    assert v2_messages(lists=lists) == expected


@pytest.mark.parametrize(
    ("account", "expected"), [("Acme Inc", "Acme Inc"), (" Acme ", "Acme"), ("", "")]
)
def test_account_is_a_trimmed_name_or_empty_to_unlink(account: str, expected: str) -> None:
    """The account is the company's name, trimmed; "" is kept, and means unlink."""
    loaded = normalize_contact({"email": "a@example.com", "account": account})
    assert contact_to_attributes(loaded) == {"account": expected}


@pytest.mark.parametrize(
    ("account", "message"),
    [
        (" ", "Account name must not be blank."),
        ("a" * 256, "Account name is longer than maximum length 255."),
        ("Acme\r\nInc", "Account name must not contain control characters."),
        (7, "Account name must be a string."),
        (None, "Field may not be null."),
    ],
)
def test_bad_accounts_are_rejected(account: Any, message: str) -> None:
    """A blank, overlong, control-character or non-string account is rejected on account."""
    assert v2_messages(account=account) == {"account": [message]}


@pytest.mark.parametrize("name", ["orgid", "deleted"])
def test_v2_still_rejects_deprecated_attributes(name: str) -> None:
    """orgid and deleted are rejected with their deprecation in v2 events too."""
    messages = decode_messages(wire(v=2, contact={"email": "a@example.com", name: 1}))
    assert "deprecated" in messages["contact"][name][0]


def test_v2_still_rejects_unknown_attributes() -> None:
    """An unknown contact attribute in a v2 event is rejected under its own name."""
    messages = decode_messages(wire(v=2, contact={"email": "a@example.com", "destination": "eu"}))
    assert messages == {"contact": {"destination": ["Unknown field."]}}


def test_v2_event_over_64_kib_of_tags_is_rejected() -> None:
    """The 64 KiB limit counts tags and lists too."""
    tags = {f"{n:03d}" + "t" * 250: True for n in range(300)}
    with pytest.raises(InvalidContactEvent) as caught:
        encode_event({"email": "a@example.com", "tags": tags}, occurred_at=WHEN)
    assert "limit is 65536" in str(caught.value)


# -- attributes back to contacts: for replay, and for /contact/sync ---------------------------


def test_event_contact_rebuilds_every_attribute_kind() -> None:
    """attributes_to_event_contact gives the v2 contact, in the schema's order, that flattens back to the same attributes."""
    rebuilt = attributes_to_event_contact("jon@example.com", DOCUMENTED_V2_ATTRIBUTES.items())
    assert list(rebuilt) == list(DOCUMENTED_V2)
    assert normalize_contact(rebuilt) == rebuilt
    assert contact_to_attributes(rebuilt) == DOCUMENTED_V2_ATTRIBUTES


@pytest.mark.parametrize(
    ("name", "value"),
    [("tag:Trial", "2"), ("tag:Trial", "1Trial"), ("list:3", "0"), ("nickname", "x"), ("email", "a@b.c")],
)  # fmt: skip
def test_event_contact_refuses_what_no_event_gives(name: str, value: str) -> None:
    """An unknown attribute name, or a tag or list value other than the decoded ones, raises naming the attribute."""
    with pytest.raises(InvalidContactEvent) as caught:
        attributes_to_event_contact("jon@example.com", [(name, value)])
    assert list(caught.value.messages) == [name]


def test_sync_body_leaves_out_tags_lists_and_account() -> None:
    """sync_contact_body holds only what /contact/sync takes: email, names, phone and fieldValues."""
    body = sync_contact_body("jon@example.com", DOCUMENTED_V2_ATTRIBUTES.items())
    assert body == {
        "email": "jon@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "phone": "7223224241",
        "fieldValues": [
            {"field": "%SHIRT_SIZE%", "value": "L"},
            {"field": "6", "value": "x"},
            {"field": "Company size", "value": "10-50"},
        ],
    }
    assert sync_contact_body("jon@example.com", [("tag:Trial", "1"), ("account", "")]) == {
        "email": "jon@example.com"
    }


tag_names = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=8,
)
plain_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8)
v2_parts: dict[str, st.SearchStrategy[Any]] = {
    "firstName": plain_text,
    "fieldValues": st.lists(
        st.fixed_dictionaries(
            {
                "field": st.one_of(
                    st.integers(1, 99).map(str),
                    st.from_regex(r"\A%[A-Z0-9_]{1,6}%\Z"),
                    tag_names.filter(lambda t: not (t[0] == t[-1] == "%") and not t.isdigit()),
                ),
                "value": plain_text,
            }
        ),
        max_size=4,
        unique_by=lambda item: item["field"].casefold(),
    ),
    "tags": st.dictionaries(tag_names, st.booleans(), max_size=4).filter(
        lambda tags: len({name.casefold() for name in tags}) == len(tags)
    ),
    "lists": st.dictionaries(
        st.one_of(st.integers(1, 99).map(str), tag_names.filter(lambda t: not t.isdigit())),
        st.sampled_from(["subscribed", "unsubscribed"]),
        max_size=3,
    ).filter(lambda lists: len({ref.casefold() for ref in lists}) == len(lists)),
    "account": st.one_of(st.just(""), tag_names),
}
valid_v2_contacts = st.fixed_dictionaries({"email": st.just("jon@example.com")}, optional=v2_parts)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_v2_contacts)
def test_attributes_round_trip_through_the_event_contact(contact: dict[str, Any]) -> None:
    """For any valid v2 contact, its attributes rebuild a contact that encodes and decodes to the same attributes."""
    contact = normalize_contact(contact)
    attributes = contact_to_attributes(contact)
    rebuilt = attributes_to_event_contact(contact["email"], attributes.items())
    assert contact_to_attributes(rebuilt) == attributes
    _, text = encode_event(rebuilt, occurred_at=WHEN)
    assert decode_event(text).attributes == attributes


footprints = st.fixed_dictionaries(
    {}, optional={"tags": json_values, "lists": json_values, "account": json_values}
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(near_events, footprints, st.sampled_from([1, 2]))
def test_decode_of_v2_shapes_only_ever_raises_invalid_contact_event(
    document: dict[str, Any], footprint: dict[str, Any], version: int
) -> None:
    """decode_event on near-valid events with arbitrary tags, lists and account returns a ContactEvent or raises InvalidContactEvent."""
    document = {**document, "v": version}
    if isinstance(document["contact"], dict):
        document["contact"] = {**document["contact"], **footprint}
    _decode_never_crashes(json.dumps(document))
