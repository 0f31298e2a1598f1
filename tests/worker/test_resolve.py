"""worker.resolve: references become the attributes the merge store keys by, or reasons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import redis

from worker.catalog import Catalog, Kind
from worker.errors import ApiConfigError
from worker.keys import Keys
from worker.resolve import Resolver, Unresolvable
from worker.schema import ContactEvent

ITEMS: dict[str, list[dict[str, Any]]] = {
    "fields": [
        {
            "id": "6",
            "title": "Shirt size",
            "perstag": "SHIRT_SIZE",
            "type": "dropdown",
            "options": ["S", "M"],
        },
        {"id": "7", "title": "Signup", "perstag": "SIGNUP", "type": "datetime"},
    ],
    "lists": [{"id": "2", "name": "Newsletter"}],
    "tags": [],
    "accounts": [],
}


def event(**attributes: str) -> ContactEvent:
    return ContactEvent(
        "e1", dt.datetime(2026, 12, 1, tzinfo=dt.UTC), None, "jon@example.com", attributes
    )


@pytest.fixture
def resolver(redis_client: redis.Redis, key_prefix: str) -> Resolver:
    def fetch(kind: Kind) -> Iterable[Mapping[str, Any]]:
        return ITEMS[kind]

    return Resolver(Catalog(redis_client, Keys(key_prefix), fetch=fetch, memo_s=0))


def test_references_resolve_to_ids_with_typed_values(resolver: Resolver) -> None:
    """A field by perstag or title becomes field:<id> with its value formatted; a list by name becomes list:<id>; a tag is keyed by its lower-case name and keeps the name written."""
    resolved = resolver.resolve(
        event(
            firstName="Jon",
            **{
                "field:%SHIRT_SIZE%": "M",
                "field:Signup": "2026-12-01T10:00:00.5+01:00",
                "list:Newsletter": "1",
                "tag:Trial": "1",
                "account": "Acme",
            },
        )
    )
    assert resolved.rejected == []
    assert resolved.event.attributes == {
        "firstName": "Jon",
        "field:6": "M",
        "field:7": "2026-12-01T10:00:00+01:00",
        "list:2": "1",
        "tag:trial": "1Trial",
        "account": "Acme",
    }


def test_unresolvable_references_are_rejected_with_their_reason(resolver: Resolver) -> None:
    """Unknown field, unknown list and a value that is not an option are rejected as written; the rest stays."""
    resolved = resolver.resolve(
        event(firstName="Jon", **{"field:%NOPE%": "x", "list:Ghost": "1", "field:6": "XL"})
    )
    assert resolved.event.attributes == {"firstName": "Jon"}
    assert {(item.name, item.reason) for item in resolved.rejected} == {
        ("field:%NOPE%", "unknown_field"),
        ("list:Ghost", "unknown_list"),
        ("field:6", "invalid_option"),
    }


def test_without_a_catalog_ids_pass_and_names_wait(
    resolver: Resolver, redis_client: redis.Redis
) -> None:
    """While a catalog cannot be read, a field or list by id is merged as written; one by perstag, title or name raises Unresolvable (it stays in the stream)."""
    keys = resolver.catalog.keys
    for kind in ("fields", "lists"):
        redis_client.set(keys.catalog_fresh(kind) + ":failed", "1", px=60_000)
    assert resolver.resolve(event(**{"field:6": "anything", "list:2": "1"})).event.attributes == {
        "field:6": "anything",
        "list:2": "1",
    }
    with pytest.raises(Unresolvable):
        resolver.resolve(event(**{"field:%SHIRT_SIZE%": "M"}))
    with pytest.raises(Unresolvable):
        resolver.resolve(event(**{"list:Newsletter": "1"}))


def test_a_failed_catalog_read_merges_ids_as_written_and_defers_names(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The very read that fails (a 403, say) already lets a field or list by id through as written; a perstag is left for later (Unresolvable), and so it stays while the failure lasts."""

    def fetch(kind: Kind) -> Iterable[Mapping[str, Any]]:
        raise ApiConfigError(403, ["bad token"])

    failing = Resolver(Catalog(redis_client, Keys(key_prefix), fetch=fetch, memo_s=0))
    resolved = failing.resolve(event(**{"field:6": "2008-01-20", "list:3": "1"}))
    assert resolved.event.attributes == {"field:6": "2008-01-20", "list:3": "1"}
    assert resolved.rejected == []
    with pytest.raises(Unresolvable):
        failing.resolve(event(**{"field:%SHIRT_SIZE%": "L"}))
