"""Backlog mode end to end: real workers drain a backlog through bulk import (emulator at
the documented limits), while live changes keep the sync path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, drained, wait_until
from worker.keys import Keys
from worker.metrics import build_registry
from worker.status import read_status

DEBOUNCE_S = 0.5
BULK = {"CONTACT_SYNC_BULK_MIN_BACKLOG": "300", "CONTACT_SYNC_DEBOUNCE_S": str(DEBOUNCE_S)}


def names(admin: EmulatorClient) -> dict[str, str | None]:
    return {email: contact.get("firstName") for email, contact in admin.contacts().items()}


def test_a_backlog_drains_through_bulk_import_and_live_changes_keep_the_sync_path(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """2,000 new emails drain in a handful of bulk requests, exact, each confirmed contact logged; an email changed during the drain reaches the API through /contact/sync within the debounce plus about a second."""
    emulator_admin.set_bulk_speed(2000)
    emails = [f"bulk{n}@example.com" for n in range(2000)]
    producer.send_many({"email": email, "firstName": "Backlog"} for email in emails)
    (worker,) = workers.start(1, concurrency=2, **BULK)
    wait_until(
        lambda: emulator_admin.bulk_stats()["batches_submitted"] >= 1,
        timeout_s=30,
        message="a bulk batch",
    )
    during = read_status(redis_conn, keys)
    assert during.bulk_batches >= 1
    assert during.bulk_in_flight >= 11
    sent = time.time()
    producer.contact_changed("live@example.com", first_name="Live")
    wait_until(lambda: emulator_admin.contact("live@example.com"), timeout_s=15, message="live")
    live_s = time.time() - sent
    wait_until(
        lambda: drained(redis_conn, keys) and len(emulator_admin.contacts()) == 2001,
        timeout_s=90,
        interval_s=0.5,
        message="the backlog drained",
    )
    assert names(emulator_admin) == {**dict.fromkeys(emails, "Backlog"), "live@example.com": "Live"}
    stats = emulator_admin.stats()
    bulk = emulator_admin.bulk_stats()
    print(f"\nbulk: {bulk}\nby route: {stats['by_route']}\nlive latency {live_s:.2f} s")
    assert stats["by_route"].get("POST /api/3/contact/sync", 0) < 50
    assert bulk["batches_submitted"] <= 2000 // 250 + 2  # full batches, and a partial or two
    assert bulk["rate_limited"] == 0
    assert stats["rate_limited"] == 0
    assert live_s < DEBOUNCE_S + 1.5
    logged = [line for line in worker.events_named("contact.synced") if line.get("via") == "bulk"]
    assert len(logged) == bulk["contacts_applied"]
    assert {line["email"] for line in logged} <= {"b***@example.com"}  # masked
    assert redis_conn.xlen(keys.dead) == 0
    # contact-sync status and the metrics tell the same story.
    after = read_status(redis_conn, keys)
    assert (after.bulk_batches, after.bulk_in_flight) == (0, 0)
    assert after.counters["bulk_batches_completed"] == bulk["batches_completed"]
    assert after.counters["synced_bulk"] == bulk["contacts_applied"]
    metrics = generate_latest(build_registry(redis_conn, keys)).decode()
    assert (
        f'contact_sync_bulk_batches_total{{destination="default",outcome="completed"}} '
        f"{bulk['batches_completed']}.0" in metrics
    )
    assert (
        f'contact_sync_syncs_total{{destination="default",outcome="bulk"}} '
        f"{bulk['contacts_applied']}.0" in metrics
    )


def test_contact_sync_import_backfills_through_bulk_import(
    workers: WorkerPool,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """A 600-row CSV backfill with a tag and a list column ends exact in ActiveCampaign through bulk import, with almost no /contact/sync."""
    emulator_admin.set_bulk_speed(2000)
    emulator_admin.define_lists("Customers")
    list_id = str(emulator_admin.lists()[0]["id"])
    rows = [f"imp{n}@example.com,Imported{n},{'yes' if n % 2 else ''}" for n in range(600)]
    source = tmp_path / "users.csv"
    source.write_text("email,firstName,vip\n" + "\n".join(rows) + "\n")
    workers.start(1, concurrency=2, **BULK)
    command = [
        os.path.join(os.path.dirname(sys.executable), "contact-sync"), "import", str(source),
        "--tag", "VIP=vip", "--list", "Customers=vip",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "CONTACT_SYNC_REDIS_URL": redis_url,
        "CONTACT_SYNC_KEY_PREFIX": key_prefix,
    }
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: drained(redis_conn, keys) and len(emulator_admin.contacts()) == 600,
        timeout_s=60,
        interval_s=0.5,
        message="the import drained",
    )
    contacts = emulator_admin.contacts()
    for n in range(600):
        contact = contacts[f"imp{n}@example.com"]
        assert contact["firstName"] == f"Imported{n}"
        assert contact["tags"] == (["VIP"] if n % 2 else [])
        assert contact["lists"] == ({list_id: 1} if n % 2 else {})
    assert emulator_admin.bulk_stats()["contacts_applied"] >= 550
    assert emulator_admin.stats()["by_route"].get("POST /api/3/contact/sync", 0) < 50
