"""Backlog mode under faults (issue 11), with real workers, real Redis and the emulator.

Each test proves one property of DESIGN.md "2. Backlog mode through bulk import": a
batch in flight survives kill -9 of its worker; the bulk rate limit pauses bulk import and
never dead-letters; whole batches that end failed or interrupted, and the emails listed
under ``failure``, go through /contact/sync; a validation refusal sends the named
contacts to the sync path and the rest again; a change to an email whose batch is in
flight waits for it; what bulk import cannot say (tag removals, blanks) takes the sync path.

Timings: the API at 20 requests/s (emulator and workers alike), so a whole batch sent to
the sync path takes seconds; bulk import applies 5,000 contacts/s. In the first second of
a backlog (before its emails count as settled, ``BulkLimits.settled_s``) the sync path
takes the oldest emails as live traffic, about 60 at 20/s; the tests put the emails they
watch well after those.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from worker.keys import Keys
from worker.redis_client import text

RATE = 20
PAUSE_S = 5  # CONTACT_SYNC_BULK_PAUSE_S for the rate-limit storm: a minute by default

ENV = {
    "CONTACT_SYNC_BULK_MIN_BACKLOG": "300",
    "CONTACT_SYNC_DEBOUNCE_S": "0.3",
    "CONTACT_SYNC_RATE_LIMIT": str(RATE),
}
BULK_SPEED = 5000
BULK_PATH = "/api/3/import/bulk_import"
SYNC_PATH = "/api/3/contact/sync"


@pytest.fixture
def emulator() -> Iterator[FakeActiveCampaign]:
    """The emulator at 20 requests/s (the workers get the same limit)."""
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=float(RATE)).start()
    yield server
    server.stop()


def make_emails(count: int, tag: str) -> list[str]:
    return [f"{tag}{n:04d}@example.com" for n in range(count)]


def watched_emails(tag: str, count: int, *, domain: str = "example.com") -> list[str]:
    """Emails that sort among ``make_emails(..., tag)``'s from the 150th on.

    Emails ingested together are due at the same millisecond, and a ZSET orders ties by
    name: the sync path's first, live share of a backlog takes the names that sort first.
    """
    return [f"{tag}{150 + n:04d}-watched@{domain}" for n in range(count)]


def first_names(admin: EmulatorClient) -> dict[str, Any]:
    return {email: contact.get("firstName") for email, contact in admin.contacts().items()}


def wait_done(
    redis_conn: redis.Redis, keys: Keys, admin: EmulatorClient, contacts: int, timeout_s: float
) -> None:
    """Until nothing is left to do in Redis and the emulator holds ``contacts`` contacts."""
    wait_until(
        lambda: drained(redis_conn, keys) and len(admin.contacts()) >= contacts,
        timeout_s=timeout_s,
        interval_s=0.2,
        message=f"{contacts} contacts and nothing left to do",
    )


def bulk_requests(log: list[dict[str, Any]], *, status: int = 200) -> list[list[str]]:
    """The emails of each bulk_import request answered ``status``, in arrival order."""
    return [
        [email.lower() for email in entry["body"]["emails"]]
        for entry in log
        if entry["path"] == BULK_PATH and entry["status"] == status
    ]


def syncs_by_email(log: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """POST /contact/sync requests by lower-case email, in arrival order."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in log:
        if entry["path"] == SYNC_PATH and entry["method"] == "POST" and entry["email"]:
            found[entry["email"].lower()].append(entry)
    return found


def dead_letters(redis_conn: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [
        {text(name): text(value) for name, value in fields.items()}
        for _, fields in redis_conn.xrange(keys.dead)
    ]


def batch_states(redis_conn: redis.Redis, keys: Keys) -> list[str]:
    return [
        text(redis_conn.hget(keys.bulk_batch(text(batch_id)), "state") or b"?")
        for batch_id in redis_conn.zrange(keys.bulk_batches, 0, -1)
    ]


def batch_emails(log: list[dict[str, Any]], batch: dict[str, Any]) -> list[str]:
    """The emails of an emulator batch: those of the last accepted bulk_import request of
    its size that arrived before the batch was queued."""
    candidates = [
        entry
        for entry in log
        if entry["path"] == BULK_PATH
        and entry["status"] == 200
        and entry["body"]["contacts"] == batch["contacts"]
        and entry["t"] <= batch["submitted_at"]
    ]
    assert candidates, batch
    latest = max(candidates, key=lambda entry: entry["t"])
    return [email.lower() for email in latest["body"]["emails"]]


def polling_steps(redis_conn: redis.Redis, keys: Keys) -> dict[str, float]:
    """Batch id -> when its step lease ends (ms), for each batch with a step handed out.

    A handed-out step's score is its lease's end, 12 s ahead; a saved poll schedules the
    next at most 4 s ahead after three polls or fewer (worker/bulk.py _poll_delay_s).
    """
    pipe = redis_conn.pipeline(transaction=True)
    pipe.time()
    pipe.zrange(keys.bulk_batches, 0, -1, withscores=True)
    (seconds, micros), batches = pipe.execute()
    now_ms = seconds * 1000 + micros // 1000
    polls = {
        text(batch_id): int(redis_conn.hget(keys.bulk_batch(text(batch_id)), "polls") or 0)
        for batch_id, _ in batches
    }
    return {
        text(batch_id): score
        for batch_id, score in batches
        if score - now_ms > 10_000 and polls[text(batch_id)] <= 3
    }


def parse_timestamp(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_batch_in_flight_survives_kill_9_of_its_worker(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """kill -9 of a worker in the middle of polling its submitted, unprocessed batches: once the dead step's lease runs out a second worker polls them to the end; no batch is sent twice, none of their emails takes the sync path instead, nothing is lost or dead-lettered."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emulator_admin.pause_bulk()  # the batches stay in flight until the takeover
    emails = make_emails(450, "kill")
    producer.send_many({"email": email, "firstName": "Backlog"} for email in emails)
    [first] = workers.start(1, concurrency=2, **ENV)
    wait_until(
        lambda: (
            redis_conn.zcard(keys.due) + redis_conn.zcard(keys.leases) == 0
            and (states := batch_states(redis_conn, keys))
            and set(states) == {"submitted"}
            # The worker logs bulk.submitted just after it saves the state.
            and len(first.events_named("bulk.submitted")) == len(states)
        ),
        timeout_s=20,
        message="every batch submitted and logged, no sync in flight",
    )
    submitted = {line["ac_batch"] for line in first.events_named("bulk.submitted")}
    assert len(submitted) == len(batch_states(redis_conn, keys)) >= 2
    # Slow answers keep a poll in flight long enough to kill its worker in the middle of it.
    emulator_admin.set_faults(latency_ms=1500)
    wait_until(
        lambda: emulator_admin.stats()["in_flight"] >= 1,
        timeout_s=20,
        message="a poll in flight",
    )
    handed_out = polling_steps(redis_conn, keys)
    first.kill()
    assert handed_out, "the poll in flight has no step handed out"
    assert not first.events_named("bulk.completed")

    emulator_admin.set_faults(latency_ms=None)
    emulator_admin.resume_bulk()
    [second] = workers.start(1, concurrency=2, **ENV)
    wait_done(redis_conn, keys, emulator_admin, len(emails), timeout_s=40)

    assert first_names(emulator_admin) == dict.fromkeys(emails, "Backlog")
    completed = second.events_named("bulk.completed")
    assert {line["ac_batch"] for line in completed} == submitted
    # The batch whose step died with the worker moved on only after that step's lease.
    for batch_id, lease_ends_ms in handed_out.items():
        steps = [line for line in second.log_lines() if line.get("batch") == batch_id]
        first_step_s = min(parse_timestamp(line["timestamp"]) for line in steps)
        assert first_step_s >= lease_ends_ms / 1000 - 0.1, batch_id
    assert emulator_admin.bulk_stats()["batches_submitted"] == len(submitted)
    log = emulator_admin.requests_log()
    in_batches = {email for batch in bulk_requests(log) for email in batch}
    assert len(in_batches) == sum(len(batch) for batch in bulk_requests(log))
    assert not in_batches & set(syncs_by_email(log))
    assert dead_letters(redis_conn, keys) == []


def test_a_bulk_rate_limit_storm_pauses_bulk_import_and_dead_letters_nothing(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """With every bulk_import refused "Rate limit exceeded.", one refusal pauses bulk import for all workers for CONTACT_SYNC_BULK_PAUSE_S (the reference's minute by default; 5 s here) with no request meanwhile and nothing dead-lettered; after the pause the batches go through and every contact ends exact."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emulator_admin.force_bulk_rate_limit(50)
    emails = make_emails(400, "storm")
    producer.send_many({"email": email, "firstName": "Backlog"} for email in emails)
    workers.start(2, concurrency=2, **ENV, CONTACT_SYNC_BULK_PAUSE_S=str(PAUSE_S))
    wait_until(
        lambda: emulator_admin.bulk_stats()["rate_limited"] >= 1,
        timeout_s=20,
        message="a refused bulk_import",
    )
    seconds, micros = redis_conn.time()
    pause_until_ms = int(redis_conn.get(keys.bulk_pause) or 0)
    paused_for_s = (pause_until_ms - (seconds * 1000 + micros // 1000)) / 1000
    assert PAUSE_S - 2 < paused_for_s <= PAUSE_S
    # The storm would go on; end it, so the test waits out one pause, not one per refusal.
    emulator_admin.set_bulk(force_rate_limit=0)

    wait_done(redis_conn, keys, emulator_admin, len(emails), timeout_s=90)

    assert first_names(emulator_admin) == dict.fromkeys(emails, "Backlog")
    log = emulator_admin.requests_log()
    attempts = [entry for entry in log if entry["path"] == BULK_PATH]
    refused = [entry for entry in attempts if entry["status"] == 400]
    accepted = [entry for entry in attempts if entry["status"] == 200]
    batches = len(accepted)
    assert batches >= 2
    # Submits that raced the first refusal may be refused too, but none is sent during the
    # pause: every refusal comes before it, every acceptance after it.
    assert 1 <= len(refused) <= batches
    assert max(entry["t"] for entry in refused) - refused[0]["t"] < 1.0
    assert min(entry["t"] for entry in accepted) - refused[0]["t"] >= PAUSE_S - 1
    assert dead_letters(redis_conn, keys) == []
    assert int(redis_conn.hget(keys.stats, "bulk_rate_limited") or 0) == len(refused)


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_a_batch_that_ends_failed_or_interrupted_goes_through_the_sync_path(
    status: str,
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """A batch that import/info reports failed (nothing applied) or interrupted (100 of its contacts applied) sends every one of its emails through /contact/sync after it ended; the completed batch's emails never do; all exact, nothing dead-lettered."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emulator_admin.fail_next_batches(1, status=status, after=100)
    emails = make_emails(500, status[:4])
    producer.send_many({"email": email, "firstName": "Backlog"} for email in emails)
    [worker] = workers.start(1, concurrency=2, **ENV)
    wait_done(redis_conn, keys, emulator_admin, len(emails), timeout_s=40)

    assert first_names(emulator_admin) == dict.fromkeys(emails, "Backlog")
    batches = emulator_admin.bulk_batches()
    [ended] = [batch for batch in batches if batch["status"] == status]
    assert ended["processed"] == (0 if status == "failed" else 100)
    completed = [batch for batch in batches if batch["status"] == "completed"]
    assert len(completed) == len(batches) - 1 >= 1
    log = emulator_admin.requests_log()
    sent = bulk_requests(log)
    ended_emails = batch_emails(log, ended)
    syncs = syncs_by_email(log)
    late = [
        email
        for email in ended_emails
        if not any(entry["t"] >= ended["finished_at"] for entry in syncs.get(email, []))
    ]
    assert late == []
    others = {email for batch in sent for email in batch} - set(ended_emails)
    assert len(others) == sum(batch["contacts"] for batch in completed)
    assert not others & set(syncs)
    [line] = worker.events_named(f"bulk.{status}")
    assert line["to_sync"] == ended["contacts"]
    assert dead_letters(redis_conn, keys) == []


def test_emails_listed_under_failure_go_through_the_sync_path(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """A completed batch confirms its emails but those import/info lists under ``failure``; these are sent through /contact/sync after the batch ended, and end exact."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emulator_admin.set_bulk(fail_emails=[r"-watched@"])
    emails = make_emails(400, "plain")
    failing = watched_emails("plain", 10)
    order = emails + failing
    producer.send_many({"email": email, "firstName": "Backlog"} for email in order)
    workers.start(1, concurrency=2, **ENV)
    wait_done(redis_conn, keys, emulator_admin, len(order), timeout_s=30)

    assert first_names(emulator_admin) == dict.fromkeys(order, "Backlog")
    assert emulator_admin.bulk_stats()["contacts_failed"] == len(failing)
    failed_at = {
        email: batch["finished_at"]
        for batch in emulator_admin.bulk_batches()
        for email in (emulator_admin.bulk_batch(batch["batchId"]) or {})["failure"]
    }
    assert sorted(failed_at) == sorted(failing)
    log = emulator_admin.requests_log()
    syncs = syncs_by_email(log)
    for email in failing:
        assert [entry["t"] > failed_at[email] for entry in syncs[email]] == [True], email
    in_batches = {email for batch in bulk_requests(log) for email in batch}
    assert not (in_batches - set(failing)) & set(syncs)
    assert dead_letters(redis_conn, keys) == []


def test_a_validation_refusal_sends_the_named_contacts_to_the_sync_path(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """Emails the worker's schema accepts but ActiveCampaign refuses (``name@localhost``: no dotted domain) make bulk_import answer 400 naming them: the rest of the batch is sent again at once, and the named ones go to /contact/sync, whose 422 dead-letters them (api_rejected). Everything else ends exact."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emails = make_emails(400, "valid")
    refused = watched_emails("valid", 3, domain="localhost")
    order = emails + refused
    producer.send_many({"email": email, "firstName": "Backlog"} for email in order)
    workers.start(1, concurrency=2, **ENV)
    wait_until(
        lambda: drained(redis_conn, keys) and len(dead_letters(redis_conn, keys)) == len(refused),
        timeout_s=30,
        interval_s=0.2,
        message="three dead letters and nothing left to do",
    )

    assert first_names(emulator_admin) == dict.fromkeys(emails, "Backlog")
    log = emulator_admin.requests_log()
    [refused_request] = bulk_requests(log, status=400)
    assert set(refused) <= set(refused_request)
    assert emulator_admin.bulk_stats()["requests_refused"] == 1
    resent = [batch for batch in bulk_requests(log) if set(batch) & set(refused_request)]
    assert resent == [[email for email in refused_request if email not in refused]]
    syncs = syncs_by_email(log)
    for email in refused:
        assert [entry["status"] for entry in syncs[email]] == [422]
    letters = dead_letters(redis_conn, keys)
    assert sorted(letter["email"] for letter in letters) == refused
    assert {(letter["reason"], letter["status"]) for letter in letters} == {("api_rejected", "422")}


def test_a_change_during_its_batch_in_flight_lands_after_the_batch(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """Emails changed while their batch is in flight end with the newer value, sent through /contact/sync only after the batch completed: older data never overwrites newer."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emulator_admin.pause_bulk()
    emails = make_emails(400, "flight")
    producer.send_many({"email": email, "firstName": "Older"} for email in emails)
    workers.start(1, concurrency=2, **ENV)
    wait_until(
        lambda: (
            redis_conn.zcard(keys.due) == 0
            and (states := batch_states(redis_conn, keys))
            and set(states) == {"submitted"}
        ),
        timeout_s=20,
        message="every batch submitted",
    )
    changed = bulk_requests(emulator_admin.requests_log())[0][-5:]
    assert len(changed) == 5
    for email in changed:
        producer.contact_changed(email, first_name="Newer")
    wait_until(
        lambda: (
            redis_conn.xlen(keys.events) == 0
            and all(redis_conn.hexists(keys.contact(email), "p:f") for email in changed)
        ),
        timeout_s=10,
        message="the changes merged",
    )
    # Time for a sync path that ignores the batch's leases to act (debounce 0.3 s plus a
    # pump cycle); there is no event to wait for when it rightly does nothing.
    time.sleep(1.5)
    early = syncs_by_email(emulator_admin.requests_log())
    assert {email: early[email] for email in changed if email in early} == {}

    emulator_admin.resume_bulk()
    wait_until(
        lambda: (
            drained(redis_conn, keys)
            and all(
                (emulator_admin.contact(email) or {}).get("firstName") == "Newer"
                for email in changed
            )
        ),
        timeout_s=20,
        interval_s=0.2,
        message="the newer values, and nothing left to do",
    )

    expected = {**dict.fromkeys(emails, "Older"), **dict.fromkeys(changed, "Newer")}
    assert first_names(emulator_admin) == expected
    log = emulator_admin.requests_log()
    [batch] = [
        batch
        for batch in emulator_admin.bulk_batches()
        if set(changed) <= set(batch_emails(log, batch))
    ]
    assert batch["status"] == "completed"
    syncs = syncs_by_email(log)
    for email in changed:
        assert [entry["body"]["contact"].get("firstName") for entry in syncs[email]] == ["Newer"]
        assert syncs[email][0]["t"] > batch["finished_at"], email
    assert dead_letters(redis_conn, keys) == []


def test_tag_removals_and_blank_values_in_a_backlog_go_through_the_sync_path(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """In a backlog of known contacts, removing a tag and blanking a name (which bulk import cannot say) go through the sync path while the rest go through bulk import; no blank reaches bulk import and every contact ends exact."""
    emulator_admin.set_bulk_speed(BULK_SPEED)
    emails = make_emails(400, "tagged")
    producer.send_many(
        {"email": email, "firstName": "First", "lastName": "Doe", "tags": {"vip": True}}
        for email in emails
    )
    workers.start(1, concurrency=2, **ENV)
    wait_done(redis_conn, keys, emulator_admin, len(emails), timeout_s=30)
    assert all(contact["tags"] == ["vip"] for contact in emulator_admin.contacts().values())
    since = len(emulator_admin.requests_log())

    untagged, blanked = emails[100:120], emails[120:140]
    changes: list[dict[str, Any]] = []
    for email in emails:
        if email in untagged:
            changes.append({"email": email, "tags": {"vip": False}})
        elif email in blanked:
            changes.append({"email": email, "lastName": ""})
        else:
            changes.append({"email": email, "firstName": "Second"})
    producer.send_many(changes)
    wait_done(redis_conn, keys, emulator_admin, len(emails), timeout_s=30)

    contacts = emulator_admin.contacts()
    state = {
        email: (contact["firstName"], contact["lastName"], contact["tags"])
        for email, contact in contacts.items()
    }
    expected = {email: ("Second", "Doe", ["vip"]) for email in emails}
    expected.update({email: ("First", "Doe", []) for email in untagged})
    expected.update({email: ("First", "", ["vip"]) for email in blanked})
    assert state == expected
    log = emulator_admin.requests_log()[since:]
    in_batches = {email for batch in bulk_requests(log) for email in batch}
    # Most of the second backlog went through bulk import; the sync path takes a share of
    # live-looking emails in its first second, more on a loaded machine.
    assert len(in_batches) >= 250
    assert not in_batches & {*untagged, *blanked}
    removals = [
        entry for entry in log if entry["method"] == "DELETE" and "contactTags" in entry["path"]
    ]
    assert len(removals) == len(untagged)
    syncs = syncs_by_email(log)
    for email in blanked:
        assert [entry["body"]["contact"].get("lastName") for entry in syncs[email]] == [""]
    assert emulator_admin.bulk_stats()["blank_values"] == 0
    assert dead_letters(redis_conn, keys) == []
