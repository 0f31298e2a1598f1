"""A contact's tags, lists and account, synced in-process against the emulator over HTTP.

No Celery here: the merge store, the real client, the shared limiter, the catalogs and
``sync_contact`` itself, with attributes as the pump hands them over (references resolved).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterator
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.integration._harness import TOKEN
from worker.catalog import Catalog
from worker.client import ActiveCampaignClient
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.runtime import limited_fetch
from worker.schema import ContactEvent
from worker.settings import Secret, Settings
from worker.store import MergeStore
from worker.sync import SyncOutcome, sync_contact

EMAIL = "jon@example.com"
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
_entries = itertools.count(1_764_590_400_000)


class Rig:
    def __init__(self, emulator: FakeActiveCampaign, redis_conn: Any, keys: Keys) -> None:
        self.settings = Settings(
            activecampaign_url=emulator.url, api_token=Secret(TOKEN), key_prefix=keys.prefix
        )
        self.store = MergeStore(redis_conn, keys)
        self.store.ensure_group()
        self.limiter = RateLimiter(redis_conn, keys, rate_per_s=5)
        self.client = ActiveCampaignClient(emulator.url, Secret(TOKEN), timeout_s=5)
        self.catalog = Catalog(
            redis_conn, keys, fetch=limited_fetch(self.client, self.limiter, max_wait_s=10)
        )

    def change(self, at_s: float, **attributes: str) -> SyncOutcome:
        event = ContactEvent(
            id=f"e{at_s}",
            occurred_at=T0 + dt.timedelta(seconds=at_s),
            source=None,
            email=EMAIL,
            attributes=attributes,
        )
        self.store.ingest([(f"{next(_entries)}-0", event)], [], debounce_s=0)
        # As the pump would: a retry (a 429 on a loaded machine, say) is claimed again.
        for _ in range(5):
            self.store.redis.zadd(self.store.keys.due, {EMAIL: 0}, xx=True)
            (claim,) = self.store.claim_due(max_leases=10, lease_s=60).claims
            outcome = sync_contact(
                EMAIL,
                claim.lease,
                store=self.store,
                client=self.client,
                limiter=self.limiter,
                settings=self.settings,
                rng=random.Random(0),
                catalog=self.catalog,
            )
            if outcome.event not in ("contact.sync_retry", "contact.sync_deferred"):
                return outcome
            self.limiter_pause_over()
        raise AssertionError(f"no sync after 5 attempts: {outcome}")

    def limiter_pause_over(self) -> None:
        self.store.redis.delete(self.store.keys.rate_pause)


@pytest.fixture
def rig(emulator: FakeActiveCampaign, redis_conn: Any, keys: Keys) -> Iterator[Rig]:
    instance = Rig(emulator, redis_conn, keys)
    yield instance
    instance.client.close()


def sync_paths(admin: EmulatorClient) -> list[str]:
    return [f"{item['method']} {item['path']}" for item in admin.requests_log()]


def test_first_change_creates_the_contact_then_its_tags_list_and_company(
    rig: Rig, emulator_admin: EmulatorClient
) -> None:
    """One change with a name, a new tag, a list and a new company: the contact, the tag and the account are created, everything linked, all confirmed."""
    emulator_admin.define_lists("Newsletter")
    list_id = str(emulator_admin.lists()[0]["id"])
    outcome = rig.change(
        0, firstName="Jon", **{"tag:trial": "1Trial", f"list:{list_id}": "1", "account": "Acme Inc"}
    )
    assert outcome.event == "contact.synced", outcome
    contact = emulator_admin.contact(EMAIL)
    assert contact is not None
    assert (contact["firstName"], contact["tags"], contact["lists"], contact["account"]) == (
        "Jon",
        ["Trial"],
        {list_id: 1},
        "Acme Inc",
    )
    assert outcome.fields["requests"]["contact_sync"] == 1
    # The log line says what each step did, not only that the contact synced.
    assert outcome.fields["steps"] == {
        "account": "linked",
        f"list:{list_id}": "subscribed",
        "tag:trial": "added",
    }
    assert rig.change(1, firstName="Jon", **{"tag:trial": "1trial"}).event == "contact.unchanged"


def test_a_tags_only_change_of_a_known_contact_makes_no_contact_sync(
    rig: Rig, emulator_admin: EmulatorClient
) -> None:
    """Once the contact's id is known, adding and removing tags calls only the tag endpoints."""
    emulator_admin.define_tags("Trial", "VIP")
    rig.change(0, firstName="Jon", **{"tag:trial": "1Trial"})
    before = len(emulator_admin.requests_log())
    outcome = rig.change(1, **{"tag:trial": "0Trial", "tag:vip": "1VIP"})
    assert outcome.event == "contact.synced", outcome
    paths = sync_paths(emulator_admin)[before:]
    assert "POST /api/3/contact/sync" not in paths
    assert emulator_admin.contact(EMAIL)["tags"] == ["VIP"]
    assert outcome.fields["steps"] == {"tag:trial": "removed", "tag:vip": "added"}


def test_moving_company_leaves_exactly_one_link_and_empty_unlinks(
    rig: Rig, emulator_admin: EmulatorClient
) -> None:
    """account="B" after "A" links B and removes A; account="" removes the last link."""
    rig.change(0, firstName="Jon", account="A Corp")
    rig.change(1, account="B Corp")
    assert emulator_admin.contact(EMAIL)["account"] == "B Corp"
    rig.change(2, account="")
    assert emulator_admin.contact(EMAIL)["account"] is None


def test_removing_a_tag_the_contact_never_had_sends_no_delete(
    rig: Rig, emulator_admin: EmulatorClient
) -> None:
    """A removal of a tag that exists but is not on the contact reads the contact's tags once and deletes nothing."""
    emulator_admin.define_tags("Churned")
    rig.change(0, firstName="Jon")
    outcome = rig.change(1, **{"tag:churned": "0Churned"})
    assert outcome.event == "contact.synced"
    assert not any(path.startswith("DELETE") for path in sync_paths(emulator_admin))
