"""Hypothesis strategies for poison input: raw stream entries and producer arguments.

Shared by the worker fuzz (raw entries XADDed to a real worker) and the producer fuzz
(random Python values passed to ``contact_changed``/``send_many``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

EVENT_ID = "6f1c1b9e-6f1c-4b9e-8f1c-1b9e6f1c1b9e"
TIMESTAMP = "2026-11-29T13:00:00.123456+00:00"
ZONES = ("UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati")

# -- building blocks ---------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities included: json.dumps writes them, json.loads reads them
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=10,
)

# Non-recursive junk for the many places a value can go: st.recursive costs ~10x more a draw.
junk = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)

# Letters from many scripts, digits of other numeral systems, marks, spaces and controls.
unicode_text = st.text(alphabet=st.characters(codec=None, exclude_categories=("Cs",)), max_size=24)
with_surrogates = st.text(alphabet=st.characters(categories=("Cs", "Lo", "Ll")), max_size=10)

ascii_local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._%+-", min_size=1, max_size=20)
ascii_emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    ascii_local,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=15),
    st.sampled_from(["com", "org", "io", "example", "museum"]),
)
idn_label = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Lo", "Nd", "Mn")), min_size=1, max_size=15
)
idn_emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.one_of(ascii_local, unicode_text.filter(bool)),
    st.lists(idn_label, min_size=1, max_size=3),
    st.sampled_from(["com", "рф", "中国", "xn--p1ai", "example", "co.uk", "みんな", ""]),
)
emails = st.one_of(
    ascii_emails,
    idn_emails,
    ascii_emails.map(lambda e: f"  {e.upper()}\t"),  # trimmed and lower-cased: still valid
    ascii_emails.map(lambda e: e.replace("@", "@@")),
    st.builds(lambda n: "a" * n + "@example.com", st.integers(200, 300)),  # over 255
    unicode_text,
    with_surrogates,
    junk,
)

# st.datetimes with time zones costs ~8 ms a draw; this covers 0001..9999 and every offset
# Python allows (+-23:59) for a fraction of that.
_MIN_DATETIME = dt.datetime(1, 1, 2)
_SPAN_S = int((dt.datetime(9999, 12, 30) - _MIN_DATETIME).total_seconds())
aware_datetimes = st.builds(
    lambda seconds, micros, zone: (
        _MIN_DATETIME + dt.timedelta(seconds=seconds, microseconds=micros)
    ).replace(tzinfo=zone),
    st.one_of(st.integers(0, _SPAN_S), st.sampled_from([0, _SPAN_S, 62_135_596_800])),
    st.integers(0, 999_999),
    st.one_of(
        st.sampled_from([ZoneInfo(name) for name in ZONES]),
        st.integers(-(24 * 60) + 1, 24 * 60 - 1).map(
            lambda m: dt.timezone(dt.timedelta(minutes=m))
        ),
    ),
)
occurred_ats = st.one_of(
    aware_datetimes.map(lambda d: d.isoformat()),  # 0001..9999 with offsets up to +-23:59
    aware_datetimes.map(lambda d: d.replace(tzinfo=None).isoformat()),  # naive: rejected
    st.builds(
        lambda year, offset: f"{year}-01-01T00:00:00{offset}",
        st.sampled_from(["0000", "-0001", "10000", "99999", "1969", "2286", "2287"]),
        st.sampled_from(["+00:00", "Z", "+24:00", "-99:00", "", "+14:00"]),
    ),
    st.sampled_from(["", "now", "2026-02-30T00:00:00+00:00", "2026-11-29T25:00:00+00:00"]),
    unicode_text,
    junk,
)

# Digit strings of every length around the limits: 2**63 - 1 has 19 digits, and Python
# refuses int() of strings longer than 4300 digits.
digit_strings = st.one_of(
    st.integers(1, 30).map(lambda n: "9" * n),
    st.integers(4290, 6000).map(lambda n: "1" * n),
    st.integers(4290, 6000).map(lambda n: "0" * n + "7"),
)
field_ids = st.one_of(
    st.integers(1, 50).map(str),
    st.integers(-(2**70), 2**70),
    digit_strings,
    st.sampled_from(["0", "-1", " 7 ", "٣", "²", "1.5", "0x10", "", "1e3"]),
    junk,
)
field_values = st.one_of(
    unicode_text,
    st.lists(unicode_text, max_size=4),
    aware_datetimes.map(lambda d: d.date().isoformat()),
    with_surrogates,
    junk,
)
field_value_items = st.one_of(
    st.fixed_dictionaries({"field": field_ids, "value": field_values}),
    st.fixed_dictionaries({"field": field_ids}, optional={"value": field_values, "extra": junk}),
    junk,
)
text_values = st.one_of(unicode_text, with_surrogates, junk)


def _repeat_to_bytes(piece: str, size: int) -> str:
    return piece * max(1, size // len(piece.encode("utf-8")))


def huge_text(min_size: int = 256, max_size: int = 70_000) -> st.SearchStrategy[str]:
    """Long strings of about ``min_size..max_size`` UTF-8 bytes, built from a short draw.

    Hypothesis cannot draw 70 KB one character at a time, so a short piece is repeated.
    """
    return st.builds(
        _repeat_to_bytes,
        st.one_of(
            st.sampled_from(["x", "é", "€", "😀", "\\", '"', "\u200b", "ab", "\u202e"]),
            st.text(
                alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=3
            ),
        ),
        # Mostly short enough to reach the schema's per-field limits, some over 64 KiB.
        st.one_of(
            st.integers(min_size, min(max_size, 4 * min_size + 1_000)),
            st.integers(max(min_size, max_size - 8_000), max_size),
        ),
    )


def _document(contact: Any, **envelope: Any) -> dict[str, Any]:
    document = {"v": 1, "id": EVENT_ID, "occurred_at": TIMESTAMP, "contact": contact}
    document.update(envelope)
    return document


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False)


# -- whole events ------------------------------------------------------------------------

valid_contacts = st.fixed_dictionaries(
    {"email": st.sampled_from([f"fuzz{n}@example.com" for n in range(20)])},
    optional={
        "firstName": st.text(max_size=20, alphabet=st.characters(exclude_categories=("Cs",))),
        "lastName": st.text(max_size=20, alphabet=st.characters(exclude_categories=("Cs",))),
        "phone": st.text(alphabet="+0123456789 ", max_size=15),
        "fieldValues": st.lists(
            st.fixed_dictionaries(
                {"field": st.integers(1, 9), "value": st.text(max_size=20).filter(str.isprintable)}
            ),
            max_size=3,
            unique_by=lambda item: item["field"],
        ),
    },
)
valid_events = st.builds(
    lambda contact, when, ident: _dumps(
        {"v": 1, "id": str(ident), "occurred_at": when.isoformat(), "contact": contact}
    ),
    valid_contacts,
    aware_datetimes,
    st.uuids(),
)

near_events = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), st.sampled_from([1.0, "1", True, 2, 0, -1]), junk),
        "id": st.one_of(st.uuids().map(str), st.just(EVENT_ID.upper()), unicode_text, junk),
        "occurred_at": occurred_ats,
        "contact": st.one_of(
            st.fixed_dictionaries(
                {"email": emails},
                optional={
                    "firstName": text_values,
                    "lastName": text_values,
                    "phone": text_values,
                    "orgid": junk,
                    "deleted": junk,
                    "fieldValues": st.one_of(st.lists(field_value_items, max_size=5), junk),
                    "nickname": junk,
                },
            ),
            json_values,
        ),
    },
    optional={"source": text_values, "extra": junk},
).flatmap(lambda document: st.sampled_from([_dumps(document), json.dumps(document)]))

deep_nesting = st.one_of(
    st.builds(
        lambda opener, depth: opener * depth + "1" + "]" * depth,
        st.just("["),
        st.one_of(st.integers(50, 3_000), st.integers(30_000, 33_000)),
    ),
    st.builds(
        lambda depth: '{"a":' * depth + "1" + "}" * depth,
        st.one_of(st.integers(50, 1_500), st.integers(12_000, 13_200)),
    ),
    st.builds(  # nested inside an otherwise valid event
        lambda depth, where: _dumps(_document({"email": "deep@example.com"})).replace(
            '"deep@example.com"',
            '"deep@example.com", "' + where + '": ' + "[" * depth + '"x"' + "]" * depth,
        ),
        st.one_of(st.integers(50, 2_000), st.integers(15_000, 16_000)),
        st.sampled_from(["firstName", "fieldValues", "nickname"]),
    ),
)

huge_events = st.one_of(
    st.builds(
        lambda text, where: _dumps(_document({"email": "huge@example.com", where: text})),
        huge_text(),
        st.sampled_from(["firstName", "lastName", "phone"]),
    ),
    st.builds(
        lambda text: _dumps(
            _document({"email": "huge@example.com", "fieldValues": [{"field": 1, "value": text}]})
        ),
        huge_text(10_000, 70_000),
    ),
    st.builds(lambda text: _dumps(_document({"email": text + "@example.com"})), huge_text()),
    st.builds(
        lambda text: _dumps(_document({"email": "huge@example.com"}, source=text)), huge_text()
    ),
    st.builds(
        lambda count: _dumps(
            _document(
                {
                    "email": "many@example.com",
                    "fieldValues": [{"field": n, "value": "v"} for n in range(1, count + 1)],
                }
            )
        ),
        st.integers(490, 700),
    ),
)

email_events = st.builds(
    lambda email: _dumps(_document({"email": email, "firstName": "Idn"})), emails
)
date_events = st.builds(
    lambda when, value: _dumps(
        {
            "v": 1,
            "id": EVENT_ID,
            "occurred_at": when,
            "contact": {
                "email": "dates@example.com",
                "fieldValues": [{"field": 6, "value": value}],
            },
        }
    ),
    occurred_ats,
    st.one_of(aware_datetimes.map(lambda d: d.isoformat()), occurred_ats),
)

# A valid event with exactly one value replaced: the shapes a fast path accepts up to the
# last check, which is where a check that raises instead of refusing hides.
_ONE_OFF_SLOTS: dict[str, st.SearchStrategy[Any]] = {
    "v": st.one_of(st.sampled_from([1.0, "1", True, 2, 0]), junk),
    "id": st.one_of(unicode_text, junk),
    "occurred_at": occurred_ats,
    "source": st.one_of(text_values, huge_text(200, 400)),
    "email": emails,
    "firstName": st.one_of(text_values, huge_text(200, 400)),
    "field": field_ids,
    "value": st.one_of(field_values, huge_text(16_000, 17_000)),
}


def one_off_contact(slot: str, value: Any) -> dict[str, Any]:
    """A valid contact with ``slot`` (email, firstName, field or value) set to ``value``."""
    contact: dict[str, Any] = {
        "email": "one.off@example.com",
        "firstName": "Ann",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}],
    }
    if slot in ("field", "value"):
        contact["fieldValues"][0][slot] = value
    else:
        contact[slot] = value
    return contact


def _one_off_event(slot: str, value: Any) -> str:
    if slot in ("v", "id", "occurred_at", "source"):
        return _dumps(_document(one_off_contact("firstName", "Ann"), **{slot: value}))
    return _dumps(_document(one_off_contact(slot, value)))


one_off_events = st.sampled_from(sorted(_ONE_OFF_SLOTS)).flatmap(
    lambda slot: _ONE_OFF_SLOTS[slot].map(lambda value: _one_off_event(slot, value))
)

# -- raw stream entries ------------------------------------------------------------------

Entry = dict[Any, Any]


def _event_field(text: st.SearchStrategy[str]) -> st.SearchStrategy[Entry]:
    """An entry whose ``event`` field is ``text``; lone surrogates become invalid UTF-8 bytes."""
    return text.map(lambda t: {b"event": t.encode("utf-8", "surrogatepass")})


# family -> (strategy, how many of the 10,000 cases). Quotas instead of one st.one_of: hypothesis
# does not spread draws evenly over branches, and deep or huge entries (tens of KB each) would
# then dominate the run's bytes and time.
RAW_FAMILIES: dict[str, tuple[st.SearchStrategy[Entry], int]] = {
    "random_bytes": (st.binary(max_size=2_000).map(lambda b: {b"event": b}), 1_000),
    "random_fields": (  # random field names, maybe without "event"
        st.dictionaries(
            st.one_of(st.binary(max_size=12), st.sampled_from([b"event", b"Event", b"events"])),
            st.binary(max_size=200),
            min_size=1,
            max_size=4,
        ),
        600,
    ),
    "valid_plus_fields": (
        st.fixed_dictionaries(
            {b"event": valid_events.map(str.encode), b"extra": st.binary(max_size=20)}
        ),
        300,
    ),
    # json.dumps escapes lone surrogates as \\udxxx (valid UTF-8, invalid Unicode); _dumps
    # writes them raw (invalid UTF-8 once encoded).
    "random_json": (_event_field(json_values.map(_dumps) | json_values.map(json.dumps)), 1_300),
    "deep_nesting": (_event_field(deep_nesting), 500),
    "huge_strings": (_event_field(huge_events), 500),
    "emails": (_event_field(email_events), 1_300),
    "dates": (_event_field(date_events), 1_000),
    "junk_in_valid_looking": (_event_field(near_events), 1_200),
    "one_value_off": (_event_field(one_off_events), 1_500),
    "valid": (_event_field(valid_events), 800),
}


def collect(strategy: st.SearchStrategy[Any], count: int, *, batch: int = 4) -> list[Any]:
    """``count`` values drawn by hypothesis's generator (no shrinking, no example database).

    Each hypothesis example draws a list of ``batch`` values, which saves part of the
    per-example overhead (about 2 ms on a busy 2-core box).
    """
    found: list[Any] = []
    strategy = st.lists(strategy, min_size=batch, max_size=batch)

    @settings(
        max_examples=-(-count // batch),
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(values: list[Any]) -> None:
        found.extend(values)

    while len(found) < count:
        draw()
    return found[:count]


# -- producer arguments ------------------------------------------------------------------

anything = st.one_of(
    json_values,
    unicode_text,
    with_surrogates,
    st.binary(max_size=20),
    st.dates(),
    st.datetimes(timezones=st.none() | st.sampled_from([ZoneInfo(n) for n in ZONES])),
    st.times(),
    st.decimals(),
    st.complex_numbers(),
    st.uuids(),
    st.tuples(json_scalars, json_scalars),
    st.frozensets(st.integers(), max_size=3),
    st.builds(object),
)
producer_field_values = st.one_of(
    field_values,
    aware_datetimes,
    st.datetimes(),  # naive: refused
    st.dates(),
    st.lists(st.one_of(unicode_text, json_scalars), max_size=4),
    st.tuples(unicode_text, unicode_text),
    huge_text(16_000, 20_000),
    anything,
)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


producer_fields = st.one_of(
    st.none(),
    st.dictionaries(field_ids.filter(_hashable), producer_field_values, max_size=5),
    st.dictionaries(anything.filter(_hashable), producer_field_values, max_size=3),
    anything,
)


_random_calls = st.fixed_dictionaries(
    {"email": st.one_of(emails, anything)},
    optional={
        "first_name": st.one_of(text_values, anything, huge_text(200, 400)),
        "last_name": st.one_of(text_values, anything),
        "phone": st.one_of(text_values, anything),
        "fields": producer_fields,
        "occurred_at": st.one_of(aware_datetimes, st.datetimes(), anything),
        "source": st.one_of(st.text(max_size=300), with_surrogates, anything),
    },
)
_PRODUCER_ONE_OFF: dict[str, st.SearchStrategy[Any]] = {
    "email": st.one_of(emails, anything),
    "first_name": st.one_of(text_values, anything, huge_text(200, 400)),
    "fields": producer_fields,
    "field": st.one_of(field_ids, anything).filter(_hashable),
    "value": producer_field_values,
    "occurred_at": st.one_of(aware_datetimes, anything),
    "source": st.one_of(st.text(max_size=300), with_surrogates, anything),
}


def _one_off_call(slot: str, value: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"email": "one.off@example.com", "first_name": "Ann", "fields": {6: "x"}}
    if slot == "field":
        call["fields"] = {value: "x"}
    elif slot == "value":
        call["fields"] = {6: value}
    else:
        call[slot] = value
    return call


producer_calls = st.one_of(
    _random_calls,
    st.sampled_from(sorted(_PRODUCER_ONE_OFF)).flatmap(
        lambda slot: _PRODUCER_ONE_OFF[slot].map(lambda value: _one_off_call(slot, value))
    ),
)
producer_contacts = st.one_of(
    st.sampled_from(["email", "firstName", "field", "value"]).flatmap(
        lambda slot: _ONE_OFF_SLOTS[slot].map(lambda value: one_off_contact(slot, value))
    ),
    st.fixed_dictionaries(
        {"email": st.one_of(emails, anything)},
        optional={
            "firstName": st.one_of(text_values, anything),
            "phone": st.one_of(text_values, anything),
            "fieldValues": st.one_of(
                st.lists(
                    st.fixed_dictionaries({"field": field_ids, "value": producer_field_values}),
                    max_size=4,
                ),
                anything,
            ),
            "orgid": anything,
            "extra": anything,
        },
    ),
    st.dictionaries(st.one_of(unicode_text, st.integers()), anything, max_size=4),
    anything,
)
producer_batches = st.lists(producer_contacts, max_size=4)
