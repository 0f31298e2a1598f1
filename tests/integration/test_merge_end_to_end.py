"""End to end: producers -> Redis Stream -> real Celery workers -> HTTP emulator."""

from __future__ import annotations

import datetime as dt
import random
import threading
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, drained, wait_until
from tests.integration._lww import stored_state
from worker.keys import Keys

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
ATTRIBUTES = ("firstName", "lastName", "phone", "field:1", "field:2")  # text fields


def _event(rng: random.Random, email: str, when: dt.datetime) -> dict[str, Any]:
    contact: dict[str, Any] = {"email": email}
    fields = []
    for name in rng.sample(ATTRIBUTES, rng.randint(1, 3)):
        value = f"{name}-{rng.randint(0, 9999)}"
        if name.startswith("field:"):
            fields.append({"field": name[6:], "value": value})
        else:
            contact[name] = value
    if fields:
        contact["fieldValues"] = fields
    return {"contact": contact, "occurred_at": when}


def _expected(events: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per-attribute last write wins by occurred_at (all distinct in these tests)."""
    best: dict[str, dict[str, tuple[dt.datetime, str]]] = {}
    for event in events:
        contact = event["contact"]
        state = best.setdefault(contact["email"], {})
        values = {k: v for k, v in contact.items() if k not in ("email", "fieldValues")}
        values.update(
            {f"field:{item['field']}": item["value"] for item in contact.get("fieldValues", [])}
        )
        for name, value in values.items():
            if name not in state or event["occurred_at"] > state[name][0]:
                state[name] = (event["occurred_at"], value)
    return {
        email: {name: value for name, (_, value) in state.items()} for email, state in best.items()
    }


def _send(producer: ContactSyncProducer, events: list[dict[str, Any]], threads: int = 3) -> None:
    chunks = [events[n::threads] for n in range(threads)]

    def run(chunk: list[dict[str, Any]]) -> None:
        for event in chunk:
            producer.send_many([event["contact"]], occurred_at=event["occurred_at"])

    pool = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


@pytest.mark.slow
def test_thousand_shuffled_events_merge_into_one_request_per_email(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """1,000 shuffled events for 100 emails from 3 threads end in exact per-attribute LWW state, one request per email."""
    rng = random.Random(7)
    emails = [f"user{n}@example.com" for n in range(100)]
    events = [
        _event(rng, rng.choice(emails), T0 + dt.timedelta(milliseconds=n)) for n in range(1000)
    ]
    rng.shuffle(events)
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="4")
    _send(producer, events)
    expected = _expected(events)
    wait_until(
        lambda: len(emulator_admin.contacts()) == len(expected) and drained(redis_conn, keys),
        timeout_s=60,
        message="all contacts synced",
    )
    assert stored_state(emulator_admin) == expected
    stats = emulator_admin.stats()
    assert stats["by_path"].get("/api/3/contact/sync", 0) == len(expected)
    assert stats["max_in_flight_per_email"] <= 1


def test_last_write_wins_across_syncs(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """After a sync, late events older than the sent value change nothing; newer events still win."""
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.3")
    email = "late@example.com"
    producer.contact_changed(
        email, first_name="Second", last_name="Keep", occurred_at=T0 + dt.timedelta(seconds=2)
    )
    wait_until(lambda: emulator_admin.contacts().get(email), timeout_s=20, message="first sync")
    producer.contact_changed(
        email, first_name="First-late", occurred_at=T0 + dt.timedelta(seconds=1)
    )
    wait_until(lambda: drained(redis_conn, keys), timeout_s=20, message="late event processed")
    assert emulator_admin.contacts()[email]["firstName"] == "Second"
    assert emulator_admin.stats()["by_path"]["/api/3/contact/sync"] == 1
    producer.contact_changed(email, first_name="Third", occurred_at=T0 + dt.timedelta(seconds=3))
    wait_until(
        lambda: emulator_admin.contacts()[email]["firstName"] == "Third",
        timeout_s=20,
        message="newer event synced",
    )
    assert emulator_admin.contacts()[email]["lastName"] == "Keep"


def test_values_already_confirmed_make_no_request(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """Re-sending confirmed values makes no request and logs contact.unchanged."""
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.3")
    email = "same@example.com"
    producer.contact_changed(email, first_name="Jo", fields={6: dt.date(2008, 1, 20)})
    wait_until(lambda: emulator_admin.contacts().get(email), timeout_s=20, message="first sync")
    wait_until(lambda: drained(redis_conn, keys), timeout_s=20, message="drained")
    producer.contact_changed(email, first_name="Jo", fields={"6": "2008-01-20"})
    wait_until(
        lambda: any(line.get("event") == "contact.unchanged" for line in worker.log_lines()),
        timeout_s=20,
        message="contact.unchanged",
    )
    assert emulator_admin.stats()["by_path"]["/api/3/contact/sync"] == 1


def test_change_during_flight_is_sent_by_a_follow_up_sync(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """A change that arrives while the email's request is in flight goes out in a second request, never concurrently."""
    emulator_admin.set_faults(latency_ms=1500)
    workers.start(2, CONTACT_SYNC_DEBOUNCE_S="0.2")
    email = "busy@example.com"
    producer.contact_changed(email, first_name="One")
    wait_until(
        lambda: emulator_admin.stats()["requests_total"] >= 1,
        timeout_s=20,
        message="first request arrives",
    )
    producer.contact_changed(email, last_name="Two")
    wait_until(
        lambda: emulator_admin.contacts().get(email, {}).get("lastName") == "Two",
        timeout_s=20,
        message="follow-up",
    )
    stored = emulator_admin.contacts()[email]
    assert (stored["firstName"], stored["lastName"]) == ("One", "Two")
    stats = emulator_admin.stats()
    assert stats["by_path"]["/api/3/contact/sync"] == 2
    assert stats["max_in_flight_per_email"] == 1
