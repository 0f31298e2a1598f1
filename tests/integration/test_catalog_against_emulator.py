"""The catalog client and cache against the emulator over real HTTP: the protocol agrees.

Unit tests mock the API with ``responses``; this reads real pages from the emulator (which
follows reference/activecampaign-api.md), through the shared rate limiter.
"""

from __future__ import annotations

from typing import Any

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.integration._harness import TOKEN
from worker.catalog import Catalog
from worker.client import ActiveCampaignClient
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.settings import Secret


def test_catalogs_read_from_the_emulator_resolve_every_reference(
    emulator: FakeActiveCampaign, emulator_admin: EmulatorClient, redis_conn: Any, keys: Keys
) -> None:
    """250 fields take 3 limited GET /fields; fields resolve by id, %PERSTAG% and title with their options; lists, tags and accounts by name; a second lookup reads nothing."""
    emulator_admin.define_fields(
        [{"title": f"Field {n}", "type": "text", "perstag": f"FIELD_{n}"} for n in range(1, 250)]
        + [
            {
                "title": "Shirt size",
                "type": "listbox",
                "perstag": "SHIRT_SIZE",
                "options": ["S", "M", "L"],
            }
        ],
        replace=True,
    )
    emulator_admin.define_lists("Newsletter", "Customers")
    emulator_admin.define_tags("Trial")
    emulator_admin.define_accounts("Acme Inc")
    limiter = RateLimiter(redis_conn, keys, rate_per_s=5)
    slots: list[bool] = []

    def take_slot() -> None:
        slots.append(limiter.acquire(max_wait_s=10).ok)

    api = ActiveCampaignClient(emulator.url, Secret(TOKEN), timeout_s=5)
    catalog = Catalog(
        redis_conn, keys, fetch=lambda kind: api.catalog(kind, before_request=take_slot)
    )
    try:
        shirt = catalog.field("%shirt_size%")
        assert shirt is not None
        assert (shirt.title, shirt.type, shirt.options) == (
            "Shirt size",
            "listbox",
            ("S", "M", "L"),
        )
        assert catalog.field(shirt.id) == shirt
        assert catalog.field("field 17") is not None
        assert catalog.list_id("customers") is not None
        assert catalog.tag_id("TRIAL") is not None
        assert catalog.account_id("acme inc") is not None
        for kind in ("fields", "lists", "tags", "accounts"):
            assert redis_conn.exists(keys.catalog(kind)), kind
        before = emulator_admin.stats()["by_route"]
        assert catalog.field("Shirt size") == shirt
        assert catalog.list_id("Newsletter") is not None
        assert emulator_admin.stats()["by_route"] == before
    finally:
        api.close()
    routes = emulator_admin.stats()["by_route"]
    assert routes["GET /api/3/fields"] == 3
    assert all(slots)
    assert len(slots) == sum(routes.values())
    assert emulator_admin.stats()["rate_limited"] == 0
