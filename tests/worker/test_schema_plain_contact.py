"""worker.fast_path, the schema's fast paths: whenever they answer, they answer as the schemas do (v2 and v1)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from worker.errors import InvalidContactEvent
from worker.fast_path import plain_contact, plain_event
from worker.schema import (
    ContactSchema,
    ContactSchemaV1,
    EventSchema,
    decode_event,
    normalize_contact,
)

_SCHEMA = ContactSchema()
_SCHEMA_V1 = ContactSchemaV1()
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
# Ids, and the v2 references: perstags (good, lower case, malformed) and titles near the rules.
references = st.one_of(
    st.from_regex(r"\A ?%[A-Za-z0-9_ ]{0,4}% ?\Z"),
    st.sampled_from(["%", "%%", "%A%", "%a%", "Title", " title ", "TITLE", "50% off", "a\x85b"]),
    st.sampled_from(["%É%", "%" + "A" * 254 + "%", "T" * 255, "T" * 256, " ", "\t", "x\n"]),
)
field_ids = st.one_of(
    st.integers(-2, 2**63 + 1),
    st.booleans(),
    st.sampled_from(["1", "007", " 7", "7 ", "+7", "-1", "0", "\u0661", "1.0", "", str(2**63)]),
    texts,
    references,
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
# Tag and list names and ids near every rule: case twins, padding, controls, ids, non-strings.
names = st.one_of(
    texts,
    references,
    st.sampled_from(["Trial", "trial", " Trial", "TRIAL\n", "3", "03", " 3", "0", "News"]),
    st.integers(-1, 4),
    st.booleans(),
)
statuses = st.one_of(st.sampled_from(["subscribed", "unsubscribed", "Subscribed", ""]), anything)
tag_maps = st.one_of(
    st.dictionaries(names, st.one_of(st.booleans(), anything), max_size=4), anything
)
list_maps = st.one_of(st.dictionaries(names, statuses, max_size=4), anything)
accounts = st.one_of(st.sampled_from(["", " ", "Acme", " Acme Inc "]), texts, anything)
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
        "tags": tag_maps,
        "lists": list_maps,
        "account": accounts,
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
                    "field": st.one_of(
                        st.integers(-1, 2**63), st.from_regex(r"\A[0-9]{1,20}\Z"), references
                    ),
                    "value": st.one_of(near_valid_texts, st.just("z" * 16_384), datetimes),
                }
            ),
            max_size=4,
        ),
        "tags": st.dictionaries(
            st.sampled_from(["Trial", "trial", "VIP", " VIP ", "churned"]),
            st.booleans(),
            max_size=3,
        ),
        "lists": st.dictionaries(
            st.sampled_from(["3", "03", "7", "Newsletter", "newsletter "]),
            st.sampled_from(["subscribed", "unsubscribed"]),
            max_size=3,
        ),
        "account": st.sampled_from(["", "Acme Inc", " Acme "]),
    },
)


# Mostly valid v2 contacts: references, tags and lists near their rules, so that the fast
# path answers for them often and its edges (case twins, padding, ids as names) are explored.
near_valid_names = st.one_of(
    st.sampled_from(
        ["Trial", "trial", " Trial ", "VIP", "3", "03", " 7 ", "News", "Ünï", "ß", "SS"]
    ),
    st.text(alphabet=st.characters(categories=("L", "Nd", "Zs")), min_size=1, max_size=5),
)
near_valid_v2 = st.fixed_dictionaries(
    {"email": st.emails()},
    optional={
        "firstName": near_valid_texts,
        "fieldValues": st.lists(
            st.fixed_dictionaries(
                {
                    "field": st.one_of(
                        near_valid_names, st.from_regex(r"\A%[A-Za-z0-9_]{1,4}%\Z"), references
                    ),
                    "value": st.text(max_size=4),
                }
            ),
            max_size=3,
        ),
        "tags": st.dictionaries(near_valid_names, st.booleans(), max_size=3),
        "lists": st.dictionaries(
            near_valid_names, st.sampled_from(["subscribed", "unsubscribed"]), max_size=3
        ),
        "account": st.one_of(accounts, near_valid_names),
    },
)


def schema_result(contact: Any, *, version: int = 2) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = (_SCHEMA_V1 if version == 1 else _SCHEMA).load(contact)
    except ValidationError:
        return None
    return loaded


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(contacts, near_valid, near_valid_v2))
def test_fast_path_agrees_with_the_schema(contact: dict[str, Any]) -> None:
    """Whenever the fast path returns a contact, the schema accepts it and returns the same, in the same key order."""
    plain = plain_contact(contact)
    if plain is not None:
        assert json.dumps(plain) == json.dumps(schema_result(contact))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(contacts, near_valid, near_valid_v2))
def test_v1_fast_path_agrees_with_the_v1_schema(contact: dict[str, Any]) -> None:
    """With version=1 the fast path answers only what the v1 schema accepts, with its result."""
    plain = plain_contact(contact, version=1)
    if plain is not None:
        assert json.dumps(plain) == json.dumps(schema_result(contact, version=1))


@pytest.mark.parametrize(
    "contact",
    [
        {"email": " Jon.Doe@Example.com ", "firstName": "John", "lastName": "Doe",
         "phone": "7223224241",
         "fieldValues": [{"field": "1", "value": "x"}, {"field": 6, "value": "2008-01-20"}]},
        {"fieldValues": [{"value": "", "field": "007"}], "phone": "", "email": "a@example.com"},
        {"email": "ann@example.com"},
        {"email": "jon@example.com", "firstName": "John",
         "fieldValues": [{"field": "6", "value": "x"}, {"field": "%shirt_size%", "value": "L"},
                         {"field": " Company size ", "value": "10-50"}],
         "tags": {"Trial": True, " churned ": False},
         "lists": {"Newsletter": "subscribed", 3: "unsubscribed"}, "account": "Acme Inc"},
        {"account": "", "tags": {}, "lists": {}, "email": "a@example.com"},
    ],
)  # fmt: skip
def test_plain_contacts_take_the_fast_path(contact: dict[str, Any]) -> None:
    """Typical valid v1 and v2 contacts are answered by the fast path, with the schema's result."""
    plain = plain_contact(contact)
    assert plain is not None
    assert json.dumps(plain) == json.dumps(schema_result(contact))
    assert normalize_contact(contact) == plain


def test_datetime_values_are_formatted_by_the_schema_alone() -> None:
    """A datetime value never takes the fast path, so normalize_contact sends it in whole seconds."""
    moment = dt.datetime(
        2026, 11, 29, 13, 5, 7, 654_321, tzinfo=dt.timezone(dt.timedelta(hours=-5))
    )
    contact = {"email": "a@example.com", "fieldValues": [{"field": 9, "value": moment}]}
    assert plain_contact(contact) is None
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
        {"email": "a@example.com", "fieldValues": [{"field": "%A%", "value": "a"}, {"field": "%a%", "value": "b"}]},
        {"email": "a@example.com", "tags": {"Trial": True, "trial": False}},
        {"email": "a@example.com", "tags": {"Trial": 1}},
        {"email": "a@example.com", "lists": {"3": "subscribed", "03": "subscribed"}},
        {"email": "a@example.com", "account": None},
    ],
)  # fmt: skip
def test_unusual_contacts_go_to_the_schema(contact: dict[str, Any]) -> None:
    """Duplicates (ignoring case), tuples, deprecated keys, nulls and bad tag values are left to the schema."""
    assert plain_contact(contact) is None


def test_padded_v1_ids_go_to_the_schema() -> None:
    """A v1 id with white space is left to the v1 schema (which trims it); v2 trims it on the fast path."""
    contact = {"email": "a@example.com", "fieldValues": [{"field": " 7", "value": "a"}]}
    assert plain_contact(contact, version=1) is None
    assert plain_contact(contact) == schema_result(contact, version=1) == schema_result(contact)


@pytest.mark.parametrize(
    "contact",
    [
        {"email": "a@example.com", "fieldValues": [{"field": "%A%", "value": "a"}]},
        {"email": "a@example.com", "fieldValues": [{"field": "Title", "value": "a"}]},
        {"email": "a@example.com", "tags": {"Trial": True}},
        {"email": "a@example.com", "lists": {"3": "subscribed"}},
        {"email": "a@example.com", "account": "Acme"},
    ],
)  # fmt: skip
def test_v2_shapes_take_no_v1_fast_path(contact: dict[str, Any]) -> None:
    """For a v1 event, perstags, titles, tags, lists and account are left to the v1 schema, which rejects them."""
    assert plain_contact(contact, version=1) is None
    assert schema_result(contact, version=1) is None
    assert plain_contact(contact) is not None


events = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.sampled_from([1, 2]), st.sampled_from([True, 1.0, "1", "2", 0, 3, None])),
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
        "contact": st.one_of(near_valid, near_valid_v2, contacts),
        "extra": anything,
    },
)

near_valid_events = st.fixed_dictionaries(
    {
        "v": st.one_of(st.sampled_from([1, 2]), st.just(True)),
        "id": st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex), st.just("x")),
        "occurred_at": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
            st.datetimes().map(lambda d: d.isoformat()),
            st.sampled_from(["2026-11-29T13:00:00Z", "2026-11-29T13:00:00.5+05:30"]),
        ),
        "contact": st.one_of(near_valid, near_valid_v2),
    },
    optional={"source": st.one_of(st.none(), near_valid_texts)},
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(events, near_valid_events))
def test_event_fast_path_agrees_with_the_schema(document: dict[str, Any]) -> None:
    """Whenever the event fast path answers, the event schema accepts the document with the same values."""
    plain = plain_event(document)
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
