"""worker.bulk_body: one snake_case entry per contact, None for what bulk import cannot say,
and the 399,999-byte cut."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from worker.bulk_body import MAX_BODY_BYTES, body_bytes, bulk_entry, fit_body

EMAIL = "jon@example.com"


def test_an_entry_holds_every_attribute_bulk_import_can_say_in_snake_case() -> None:
    """Names and phone in snake_case, fields by id, added tags by name as written, list subscriptions, and the company of a new contact; the email attribute is not repeated."""
    attributes = {
        "email": "",
        "firstName": "Jon",
        "lastName": "Doe",
        "phone": "+1 555 0100",
        "field:6": "blue",
        "field:12": "||a||b||",
        "tag:vip": "1VIP",
        "tag:beta": "1",
        "list:2": "1",
        "list:3": "2",
        "account": "Acme",
    }
    assert bulk_entry(EMAIL, attributes, known=False) == {
        "email": EMAIL,
        "first_name": "Jon",
        "last_name": "Doe",
        "phone": "+1 555 0100",
        # Sorted by attribute name: field:12 before field:6.
        "fields": [{"id": 12, "value": "||a||b||"}, {"id": 6, "value": "blue"}],
        "tags": ["beta", "VIP"],
        "subscribe": [{"listid": 2}],
        "unsubscribe": [{"listid": 3}],
        "customer_acct_name": "Acme",
    }


def test_an_email_alone_is_an_entry() -> None:
    """A new contact with nothing but its email is still an entry (bulk import creates it)."""
    assert bulk_entry(EMAIL, {"email": ""}, known=False) == {"email": EMAIL}


@pytest.mark.parametrize(
    ("attributes", "known", "why"),
    [
        ({"firstName": "Jon", "tag:vip": "0VIP"}, False, "a tag removal"),
        ({"firstName": "Jon", "tag:vip": "0"}, True, "a tag removal, flag only"),
        ({"firstName": "", "lastName": "Doe"}, False, "a blank name"),
        ({"field:6": "", "firstName": "Jon"}, True, "a blank field value"),
        ({"phone": ""}, False, "a blank phone"),
        ({"account": ""}, True, "an unlink (blank company)"),
        ({"account": "Acme", "firstName": "Jon"}, True, "a company for a known contact"),
        ({"firstName": "Jon", "color": "red"}, False, "an attribute it has no key for"),
    ],
)
def test_what_bulk_import_cannot_say_returns_none(
    attributes: dict[str, str], known: bool, why: str
) -> None:
    """A tag removal, any blank value, a known contact's company or an unknown attribute make the whole change go through the sync path (None)."""
    assert bulk_entry(EMAIL, attributes, known=known) is None, why


def test_a_company_is_sent_only_for_a_contact_activecampaign_does_not_know() -> None:
    """customer_acct_name for a new contact; the same change for a known one is None."""
    assert bulk_entry(EMAIL, {"account": "Acme"}, known=False) == {
        "email": EMAIL,
        "customer_acct_name": "Acme",
    }
    assert bulk_entry(EMAIL, {"account": "Acme"}, known=True) is None
    assert bulk_entry(EMAIL, {"firstName": "Jon"}, known=True) == {
        "email": EMAIL,
        "first_name": "Jon",
    }


def _entries_of_total_size(total: int, *, count: int) -> list[dict[str, Any]]:
    """``count`` entries whose body (as body_bytes measures it) is exactly ``total`` bytes."""
    entries = [{"email": f"c{n:04d}@example.com", "first_name": ""} for n in range(count)]
    missing = total - body_bytes(entries)
    assert missing >= 0
    entries[-1]["first_name"] = "x" * missing
    assert body_bytes(entries) == total
    return entries


def test_fit_body_keeps_a_body_of_exactly_399999_bytes_whole() -> None:
    """At 399,999 bytes every entry fits; one byte more and the last entry waits."""
    entries = _entries_of_total_size(MAX_BODY_BYTES, count=250)
    assert fit_body(entries) == 250
    entries[-1]["first_name"] += "x"
    assert body_bytes(entries) == MAX_BODY_BYTES + 1
    assert fit_body(entries) == 249
    assert body_bytes(entries[:249]) <= MAX_BODY_BYTES


def test_fit_body_counts_the_bytes_requests_sends() -> None:
    """body_bytes and fit_body measure what ``requests`` puts on the wire for ``json=``, escapes of non-ASCII text included."""
    entries = [
        {"email": "zoë@example.com", "first_name": "Zoë", "fields": [{"id": 6, "value": "日本"}]},
        {"email": "b@example.com", "tags": ["ünï"], "subscribe": [{"listid": 2}]},
    ]
    wire = requests.Request(
        "POST", "https://acct.api-us1.com/api/3/import/bulk_import", json={"contacts": entries}
    ).prepare()
    assert isinstance(wire.body, bytes)
    assert body_bytes(entries) == len(wire.body)
    assert fit_body(entries, max_bytes=len(wire.body)) == 2
    assert fit_body(entries, max_bytes=len(wire.body) - 1) == 1


def test_fit_body_agrees_with_body_bytes_at_every_cut() -> None:
    """For each prefix, fit_body's count is the longest prefix whose body fits."""
    entries = [{"email": f"{'a' * n}@example.com"} for n in range(1, 30)]
    for limit in range(body_bytes([]), body_bytes(entries) + 2, 7):
        fits = fit_body(entries, max_bytes=limit)
        assert body_bytes(entries[:fits]) <= limit
        if fits < len(entries):
            assert body_bytes(entries[: fits + 1]) > limit


def test_fit_body_of_nothing_or_of_one_entry_too_big() -> None:
    """No entries fit nothing; an entry bigger than the limit on its own fits none."""
    assert fit_body([]) == 0
    huge = {"email": EMAIL, "first_name": "x" * MAX_BODY_BYTES}
    assert fit_body([huge, {"email": EMAIL}]) == 0
