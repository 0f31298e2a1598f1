"""worker.schema's fast paths: whenever they answer, they answer as the schemas do."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from worker.errors import InvalidContactEvent
from worker.schema import (
    ContactSchema,
    EventSchema,
    _plain_contact,
    _plain_event,
    decode_event,
    normalize_contact,
)

_SCHEMA = ContactSchema()
_EVENT_SCHEMA = EventSchema()
EVENT_ID = "0b8f5a52-3c8e-4d7c-9f43-2d5d7a1d4b10"

# Values near the edges of every rule: lengths, lone surrogates, white space, signs, types.
texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(categories=("Cs", "Ll", "Nd", "Zs")), max_size=6),
    st.integers(250, 260).map(lambda n: "x" * n),
    st.sampled_from(["", " ", "\u00e9", "\ud800", "Ann"]),
)
emails = st.one_of(
    st.emails(),
    st.sampled_from(
        [" Jon@Example.COM ", "a@b", "a@b.com\n", "é@example.com", "x" * 250 + "@e.com"]
    ),
    texts,
)
field_ids = st.one_of(
    st.integers(-2, 2**63 + 1),
    st.booleans(),
    st.sampled_from(["1", "007", " 7", "7 ", "+7", "-1", "0", "\u0661", "1.0", "", str(2**63)]),
    texts,
    st.none(),
)
# Datetimes with microseconds and any offset, sub-minute ones included, and naive ones.
datetimes = st.one_of(
    st.datetimes(timezones=st.timezones()),
    st.datetimes(
        timezones=st.timedeltas(-dt.timedelta(hours=23), dt.timedelta(hours=23)).map(dt.timezone)
    ),
    st.datetimes(),
)
field_values = st.one_of(
    texts,
    st.none(),
    st.integers(),
    st.lists(st.text(max_size=3), max_size=2),
    st.just("v" * 16_385),
    datetimes,
    st.dates(),
)
anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
items = st.one_of(
    st.fixed_dictionaries(
        {"field": field_ids, "value": field_values}, optional={"extra": anything}
    ),
    st.fixed_dictionaries({}, optional={"field": field_ids, "value": field_values}),
    anything,
)
contacts = st.fixed_dictionaries(
    {},
    optional={
        "email": emails,
        "firstName": st.one_of(texts, anything),
        "lastName": texts,
        "phone": st.one_of(texts, anything),
        "fieldValues": st.one_of(st.lists(items, max_size=4), st.tuples(items), anything),
        "orgid": anything,
        "nickname": texts,
    },
)

# Mostly valid contacts, so that the fast path answers often and its edges are explored.
near_valid_texts = st.one_of(
    st.text(max_size=8), st.integers(253, 257).map(lambda n: "y" * n), st.just("a\ud800")
)
near_valid = st.fixed_dictionaries(
    {"email": st.one_of(st.emails(), st.emails().map(lambda e: f" {e.upper()} "))},
    optional={
        "firstName": near_valid_texts,
        "lastName": near_valid_texts,
        "phone": near_valid_texts,
        "fieldValues": st.lists(
            st.fixed_dictionaries(
                {
                    "field": st.one_of(st.integers(-1, 2**63), st.from_regex(r"\A[0-9]{1,20}\Z")),
                    "value": st.one_of(near_valid_texts, st.just("z" * 16_384), datetimes),
                }
            ),
            max_size=4,
        ),
    },
)


def schema_result(contact: Any) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = _SCHEMA.load(contact)
    except ValidationError:
        return None
    return loaded


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(contacts, near_valid))
def test_fast_path_agrees_with_the_schema(contact: dict[str, Any]) -> None:
    """Whenever the fast path returns a contact, the schema accepts it and returns the same, in the same key order."""
    plain = _plain_contact(contact)
    if plain is not None:
        assert json.dumps(plain) == json.dumps(schema_result(contact))


@pytest.mark.parametrize(
    "contact",
    [
        {"email": " Jon.Doe@Example.com ", "firstName": "John", "lastName": "Doe",
         "phone": "7223224241",
         "fieldValues": [{"field": "1", "value": "x"}, {"field": 6, "value": "2008-01-20"}]},
        {"fieldValues": [{"value": "", "field": "007"}], "phone": "", "email": "a@example.com"},
        {"email": "ann@example.com"},
    ],
)  # fmt: skip
def test_plain_contacts_take_the_fast_path(contact: dict[str, Any]) -> None:
    """Typical valid contacts are answered by the fast path, with the schema's result."""
    plain = _plain_contact(contact)
    assert plain is not None
    assert json.dumps(plain) == json.dumps(schema_result(contact))
    assert normalize_contact(contact) == plain


def test_datetime_values_are_formatted_by_the_schema_alone() -> None:
    """A datetime value never takes the fast path, so normalize_contact sends it in whole seconds."""
    moment = dt.datetime(
        2026, 11, 29, 13, 5, 7, 654_321, tzinfo=dt.timezone(dt.timedelta(hours=-5))
    )
    contact = {"email": "a@example.com", "fieldValues": [{"field": 9, "value": moment}]}
    assert _plain_contact(contact) is None
    assert normalize_contact(contact)["fieldValues"] == [
        {"field": "9", "value": "2026-11-29T13:05:07-05:00"}
    ]


@pytest.mark.parametrize(
    "contact",
    [
        {"email": "a@example.com", "fieldValues": [{"field": 1, "value": "a"}, {"field": "1", "value": "b"}]},
        {"email": "a@example.com", "fieldValues": ({"field": 1, "value": "a"},)},
        {"email": "a@example.com", "orgid": 1},
        {"email": "a@example.com", "firstName": None},
        {"email": "a@example.com", "fieldValues": [{"field": " 7", "value": "a"}]},
    ],
)  # fmt: skip
def test_unusual_contacts_go_to_the_schema(contact: dict[str, Any]) -> None:
    """Duplicates, tuples, deprecated keys, nulls and padded ids are left to the schema."""
    assert _plain_contact(contact) is None


events = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(1), st.sampled_from([True, 1.0, "1", 2, None])),
        "id": st.one_of(
            st.just(EVENT_ID),
            st.uuids().map(lambda u: u.hex),
            st.uuids().map(lambda u: "{" + str(u).upper() + "}"),
            texts,
            anything,
        ),
        "occurred_at": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
            st.datetimes().map(lambda d: d.isoformat()),
            st.sampled_from(["2026-11-29T13:00:00Z", "2026-11-29 13:00:00+01:00", "2026-11-29"]),
            texts,
            anything,
        ),
        "source": st.one_of(st.none(), texts, anything),
        "contact": st.one_of(near_valid, contacts),
        "extra": anything,
    },
)

near_valid_events = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), st.just(True)),
        "id": st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex), st.just("x")),
        "occurred_at": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
            st.datetimes().map(lambda d: d.isoformat()),
            st.sampled_from(["2026-11-29T13:00:00Z", "2026-11-29T13:00:00.5+05:30"]),
        ),
        "contact": near_valid,
    },
    optional={"source": st.one_of(st.none(), near_valid_texts)},
)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(events, near_valid_events))
def test_event_fast_path_agrees_with_the_schema(document: dict[str, Any]) -> None:
    """Whenever the event fast path answers, the event schema accepts the document with the same values."""
    plain = _plain_event(document)
    if plain is None:
        return
    loaded = _EVENT_SCHEMA.load(document)
    assert plain["id"] == loaded["id"]
    assert plain["occurred_at"].isoformat() == loaded["occurred_at"].isoformat()
    assert plain["occurred_at"].utcoffset() == loaded["occurred_at"].utcoffset()
    assert plain["source"] == loaded["source"]
    assert json.dumps(plain["contact"]) == json.dumps(loaded["contact"])


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDC00", "\\uDbFf"])
@pytest.mark.parametrize("where", ["key", "value"])
def test_surrogate_escapes_are_still_caught(escape: str, where: str) -> None:
    """A lone surrogate spelled as a JSON escape, in a key or a value, is rejected as not Unicode."""
    contact = '{"email": "a@example.com", "firstName": "X"}'
    contact = (
        contact.replace("firstName", escape) if where == "key" else contact.replace("X", escape)
    )
    raw = (f'{{"v": 1, "id": "{EVENT_ID}", "occurred_at": "2026-11-29T13:00:00+00:00", '
           f'"contact": {contact}}}')  # fmt: skip
    with pytest.raises(InvalidContactEvent) as caught:
        decode_event(raw)
    assert caught.value.messages == {
        "_event": ["Not valid Unicode text: contains a lone surrogate."]
    }
