"""API requests per contact change with 2 tags, 1 list and a field by perstag (issue 10).

Ours: the worker's own resolution and sync code (``worker.resolve``, ``worker.sync``), run
in-process against the emulator, with the shared catalogs in Redis. Theirs: RudderStack's
ActiveCampaign destination's call pattern for one identify event, replayed literally
against the same emulator in the same run: sync the contact, read the tag catalog, create
the missing tags, add each tag, subscribe the list, read the field catalog, sync again with
the field values. Both count every request the emulator saw, catalog reads included.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

import requests

from fake_activecampaign import EmulatorClient
from ops.bench.procs import wait_for
from ops.bench.stats import Figure
from producers import ContactSyncProducer
from worker.catalog import Catalog
from worker.client import ActiveCampaignClient
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.resolve import Resolver
from worker.runtime import limited_fetch
from worker.schema import ContactEvent
from worker.settings import Secret, Settings
from worker.store import MergeStore
from worker.sync import sync_contact

__all__ = ["footprint_figure", "footprint_workers_figure"]

PREFIX = "bench-footprint"
TAGS = ("Trial", "VIP")
SIZES = ("S", "M", "L")


def footprint_figure(env: Any, *, contacts: int) -> Figure:
    """Requests per change, ours against the RudderStack pattern, for ``contacts`` changes."""
    admin = EmulatorClient(env.emulator.url)
    ours = _requests_per_change(admin, lambda: _ours(env, admin, contacts), contacts)
    theirs = _requests_per_change(admin, lambda: _theirs(env, admin, contacts), contacts)
    ratio = theirs / ours if ours else float("inf")
    return Figure(
        key="footprint_requests",
        name="API requests per change: 2 tags, 1 list, a field by perstag",
        measured=f"{ours:.2f} vs RudderStack's pattern {theirs:.2f} = {ratio:.2f}x fewer",
        target="fewer than the RudderStack pattern",
        passed=ours < theirs,
        values={"ours": ours, "rudderstack": theirs, "contacts": contacts},
    )


def footprint_workers_figure(env: Any, *, contacts: int) -> Figure:
    """429s with 4 worker processes (2 workers x 2) on footprint traffic: every contact gets
    a name, a field by perstag, 2 tags (one new to the account), a list and a company, then
    a second change removes a tag and moves the company; the limiter = the emulator's rate."""
    admin = EmulatorClient(env.emulator.url)
    admin.reset()
    admin.define_fields(
        [{"title": "Shirt size", "type": "dropdown", "perstag": "SHIRT_SIZE", "options": SIZES}],
        replace=True,
    )
    admin.define_lists("Newsletter")
    prefix = f"{PREFIX}-w-{random.getrandbits(32):08x}"
    client = env.client()
    producer = ContactSyncProducer(env.redis_url, prefix, source="bench")
    workers = [env.contact_sync_worker(f"fw{n}", prefix, debounce_s=0.5) for n in (1, 2)]
    started = time.monotonic()
    try:
        for worker in workers:
            worker.wait_ready()
        emails = [f"fw{n}@example.com" for n in range(contacts)]
        producer.send_many(
            {
                "email": email,
                "firstName": f"N{n}",
                "fields": {"%SHIRT_SIZE%": SIZES[n % 3]},
                "tags": {"Trial": True, f"Cohort {n % 5}": True},
                "lists": {"Newsletter": "subscribed"},
                "account": f"Company {n % 7}",
            }
            for n, email in enumerate(emails)
        )
        wait_for(lambda: _footprint_done(admin, emails, moved=False), timeout_s=600,
                 what="the first footprint changes", interval_s=0.5)  # fmt: skip
        producer.send_many(
            {"email": email, "tags": {"Trial": False}, "account": "Moved Inc"} for email in emails
        )
        wait_for(lambda: _footprint_done(admin, emails, moved=True), timeout_s=600,
                 what="the second footprint changes", interval_s=0.5)  # fmt: skip
        stats = admin.stats()
    finally:
        env.stop_workers(workers)
        producer.close()
        for name in client.scan_iter(match=f"{prefix}:*"):
            client.delete(name)
        client.close()
    elapsed = time.monotonic() - started
    limited = stats["rate_limited"]
    return Figure(
        key="footprint_rate_limited",
        name=f"429 responses, 4 worker processes, footprint traffic ({contacts} contacts x 2)",
        measured=(
            f"{limited} in {stats['requests_total']:,} requests over {elapsed:.0f} s "
            f"(max {stats['max_per_second']} in a second, limit {env.rate:g})"
        ),
        target="0",
        passed=limited == 0,
        values={
            "rate_limited": limited,
            "requests": stats["requests_total"],
            "max_per_second": stats["max_per_second"],
            "rate_per_s": env.rate,
        },
    )


def _footprint_done(admin: EmulatorClient, emails: list[str], *, moved: bool) -> bool:
    contacts = admin.contacts()
    for email in emails:
        contact = contacts.get(email)
        if contact is None:
            return False
        tagged = "Trial" in contact["tags"]
        if tagged == moved or (contact["account"] == "Moved Inc") != moved:
            return False
        if not contact["lists"]:
            return False
    return True


def _requests_per_change(admin: EmulatorClient, run: Any, contacts: int) -> float:
    admin.reset()
    admin.define_fields(
        [{"title": "Shirt size", "type": "dropdown", "perstag": "SHIRT_SIZE", "options": SIZES}],
        replace=True,
    )
    admin.define_lists("Newsletter")
    run()
    return float(admin.stats()["requests_total"]) / contacts


def _ours(env: Any, admin: EmulatorClient, contacts: int) -> None:
    client = env.client()
    keys = Keys(f"{PREFIX}-{random.getrandbits(32):08x}")
    settings = Settings(
        activecampaign_url=env.emulator.url,
        api_token=Secret(env.token),
        key_prefix=keys.prefix,
        rate_limit=env.rate,
    )
    limiter = RateLimiter(client, keys, rate_per_s=env.rate)
    api = ActiveCampaignClient(env.emulator.url, Secret(env.token), timeout_s=10)
    catalog = Catalog(client, keys, fetch=limited_fetch(api, limiter, max_wait_s=30))
    store = MergeStore(client, keys)
    store.ensure_group()
    resolver = Resolver(catalog)
    rng = random.Random(11)
    try:
        for n in range(contacts):
            email = f"fp{n}@example.com"
            event = ContactEvent(
                id=f"e{n}",
                occurred_at=dt.datetime.now(dt.UTC),
                source="bench",
                email=email,
                attributes={
                    "firstName": f"N{n}",
                    "field:%SHIRT_SIZE%": rng.choice(SIZES),
                    **{f"tag:{tag}": "1" for tag in TAGS},
                    "list:Newsletter": "1",
                },
            )
            resolved = resolver.resolve(event).event
            store.ingest([(f"{n + 1}-0", resolved)], [], debounce_s=0)
            (claim,) = store.claim_due(max_leases=10, lease_s=60).claims
            outcome = sync_contact(
                email,
                claim.lease,
                store=store,
                client=api,
                limiter=limiter,
                settings=settings,
                rng=rng,
                catalog=catalog,
            )
            if outcome.event != "contact.synced":
                raise RuntimeError(f"bench footprint: {outcome}")
    finally:
        api.close()
        for name in client.scan_iter(match=f"{keys.prefix}:*"):
            client.delete(name)
        client.close()


def _theirs(env: Any, admin: EmulatorClient, contacts: int) -> None:
    client = env.client()
    keys = Keys(f"{PREFIX}-rs-{random.getrandbits(32):08x}")
    limiter = RateLimiter(client, keys, rate_per_s=env.rate)
    session = requests.Session()
    session.headers["Api-Token"] = env.token
    base = env.emulator.url + "/api/3"
    rng = random.Random(11)
    list_id = next(item["id"] for item in admin.lists() if item["name"] == "Newsletter")

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        limiter.acquire(max_wait_s=30)
        response = session.request(method, base + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    try:
        for n in range(contacts):
            email = f"fp{n}@example.com"
            contact = call(
                "POST", "/contact/sync", {"contact": {"email": email, "firstName": f"N{n}"}}
            )
            contact_id = contact["contact"]["id"]
            known = {tag["tag"]: tag["id"] for tag in call("GET", "/tags?limit=100")["tags"]}
            for tag in TAGS:
                if tag not in known:
                    created = call("POST", "/tags", {"tag": {"tag": tag, "tagType": "contact"}})
                    known[tag] = created["tag"]["id"]
                call(
                    "POST",
                    "/contactTags",
                    {"contactTag": {"contact": contact_id, "tag": known[tag]}},
                )
            # The list id comes from the destination's configuration: no lookup.
            call(
                "POST",
                "/contactLists",
                {"contactList": {"list": list_id, "contact": contact_id, "status": 1}},
            )
            fields = call("GET", "/fields?limit=100")["fields"]
            shirt = next(field["id"] for field in fields if field["perstag"] == "SHIRT_SIZE")
            call(
                "POST",
                "/contact/sync",
                {
                    "contact": {
                        "email": email,
                        "fieldValues": [{"field": shirt, "value": rng.choice(SIZES)}],
                    }
                },
            )
    finally:
        session.close()
        for name in client.scan_iter(match=f"{keys.prefix}:*"):
            client.delete(name)
        client.close()
