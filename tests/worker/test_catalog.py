"""worker.catalog: references resolve through a Redis cache that refreshes at most once a minute."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import redis

from worker.catalog import Catalog, CatalogUnavailable, Kind
from worker.keys import Keys


class FakeApi:
    """Catalog pages as the API would give them, counting reads per kind."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {
            "fields": [
                {
                    "id": "6",
                    "title": "Shirt size",
                    "perstag": "SHIRT_SIZE",
                    "type": "dropdown",
                    "options": ["S", "M"],
                },
                {"id": "7", "title": "Company size", "perstag": "COMPANY_SIZE", "type": "text"},
            ],
            "lists": [{"id": "2", "name": "Newsletter"}],
            "tags": [{"id": "16", "tag": "Trial"}],
            "accounts": [{"id": "3", "name": "Acme Inc"}],
        }
        self.reads: Counter[str] = Counter()

    def fetch(self, kind: Kind) -> Iterable[Mapping[str, Any]]:
        self.reads[kind] += 1
        return list(self.items[kind])


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def catalog(redis_client: redis.Redis, key_prefix: str, api: FakeApi) -> Catalog:
    return Catalog(redis_client, Keys(key_prefix), fetch=api.fetch, memo_s=0)


def test_fields_resolve_by_id_perstag_and_title_case_insensitively(
    catalog: Catalog, api: FakeApi
) -> None:
    """A field by id, %PERSTAG% or title (any case) is the same field, with its type and options; one read served all."""
    by_id = catalog.field("6")
    assert by_id is not None
    assert (by_id.title, by_id.type, by_id.options) == ("Shirt size", "dropdown", ("S", "M"))
    assert catalog.field("%shirt_size%") == by_id
    assert catalog.field("SHIRT SIZE") == by_id
    assert catalog.field(" 06 ") == by_id
    assert api.reads["fields"] == 1


def test_lists_tags_and_accounts_resolve_by_name(catalog: Catalog) -> None:
    """A list by id or name, a tag and an account by name, case-insensitively."""
    assert catalog.list_id("2") == "2"
    assert catalog.list_id("newsletter") == "2"
    assert catalog.tag_id("TRIAL") == "16"
    assert catalog.account_id("acme inc") == "3"


def test_a_miss_refreshes_at_most_once_per_interval(catalog: Catalog, api: FakeApi) -> None:
    """Unknown references cost one API read per kind per minute, however many there are."""
    for n in range(50):
        assert catalog.field(f"%NOPE_{n}%") is None
        assert catalog.list_id(f"List {n}") is None
    assert api.reads == Counter({"fields": 1, "lists": 1})


def test_a_refresh_after_the_interval_sees_new_items(
    catalog: Catalog, api: FakeApi, redis_client: redis.Redis
) -> None:
    """Once the interval is over, a miss reads the catalog again and finds what was added; removed items are gone."""
    assert catalog.list_id("Customers") is None
    api.items["lists"] = [{"id": "5", "name": "Customers"}]
    redis_client.delete(catalog.keys.catalog_fresh("lists"))  # the minute has passed
    assert catalog.list_id("Customers") == "5"
    assert catalog.list_id("Newsletter") is None
    assert api.reads["lists"] == 2


def test_workers_share_one_cache(redis_client: redis.Redis, key_prefix: str, api: FakeApi) -> None:
    """A second Catalog (another worker) finds what the first read, without reading again."""
    first = Catalog(redis_client, Keys(key_prefix), fetch=api.fetch)
    second = Catalog(redis_client, Keys(key_prefix), fetch=api.fetch)
    assert first.tag_id("trial") == "16"
    assert second.tag_id("Trial") == "16"
    assert api.reads["tags"] == 1


def test_remember_adds_a_created_item_without_a_read(catalog: Catalog, api: FakeApi) -> None:
    """A tag just created is found at once; the catalog is not read again for it."""
    assert catalog.tag_id("Churned") is None
    catalog.remember("tags", "17", "Churned")
    assert catalog.tag_id("churned") == "17"
    assert api.reads["tags"] == 1


def test_an_empty_catalog_is_a_valid_answer(catalog: Catalog, api: FakeApi) -> None:
    """An account with no lists caches "no lists" too: the next miss inside the interval reads nothing."""
    api.items["lists"] = []
    assert catalog.list_id("Newsletter") is None
    assert catalog.list_id("Other") is None
    assert api.reads["lists"] == 1


def test_a_failed_read_is_tried_again_at_the_next_miss(catalog: Catalog, api: FakeApi) -> None:
    """A failed read (API down) does not count as the minute's read: misses fail fast for a few seconds, then read again and resolve."""
    calls = {"n": 0}
    original = api.fetch

    def flaky(kind: Kind) -> Iterable[Mapping[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("API down")
        return original(kind)

    catalog.fetch = flaky
    with pytest.raises(ConnectionError):
        catalog.field("%SHIRT_SIZE%")
    with pytest.raises(CatalogUnavailable):
        catalog.field("%SHIRT_SIZE%")  # fails fast: no request while the API just failed
    assert calls["n"] == 1
    catalog.redis.delete(catalog.keys.catalog_fresh("fields") + ":failed")  # seconds later
    assert catalog.field("%SHIRT_SIZE%") is not None
    assert calls["n"] == 2


def test_lookups_are_memoized_in_process_for_a_second(
    redis_client: redis.Redis, key_prefix: str, api: FakeApi
) -> None:
    """The pump resolves the same reference for every event: one Redis read a second serves them all; misses are not memoized, so a remembered item shows at once."""
    clock = {"now": 100.0}
    catalog = Catalog(
        redis_client, Keys(key_prefix), fetch=api.fetch, monotonic=lambda: clock["now"]
    )
    assert catalog.tag_id("trial") == "16"
    redis_client.delete(catalog.keys.catalog("tags"))  # the cache changed behind our back
    assert catalog.tag_id("trial") == "16"  # still the memo
    clock["now"] += 1.5
    redis_client.set(catalog.keys.catalog_fresh("tags"), "1")  # no refresh this minute
    assert catalog.tag_id("trial") is None
    catalog.remember("tags", "17", "Trial")
    assert catalog.tag_id("trial") == "17"
