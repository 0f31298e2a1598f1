"""Upgrading from layout 1: a worker converts the old contact hashes at start and syncs them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, drained, wait_until
from worker.keys import Keys
from worker.stamp import order_key

OCCURRED_US = 1_764_421_200_000_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _layout_1(state: str, name: str, value: str, occurred_us: int) -> dict[str, str]:
    return {f"{state}:{name}": value, f"{state}t:{name}": order_key(occurred_us, "1764421200000-0")}


def at(seconds: float) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=OCCURRED_US, seconds=seconds)


def test_a_new_worker_converts_layout_1_and_delivers_what_was_pending(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """Pending changes written by the earlier layout reach the API; confirmed ones stay known."""
    pending, known = "old-pending@example.com", "old-known@example.com"
    redis_conn.hset(
        keys.contact(pending),
        mapping={
            **_layout_1("p", "email", pending, OCCURRED_US),
            **_layout_1("p", "firstName", "Pat", OCCURRED_US),
            **_layout_1("p", "field:6", "2008-01-20", OCCURRED_US),
            "m:n": "1",
        },
    )
    redis_conn.zadd(keys.due, {pending: 0})
    redis_conn.hset(
        keys.contact(known),
        mapping={
            **_layout_1("c", "email", known, OCCURRED_US),
            **_layout_1("c", "lastName", "Kay", OCCURRED_US),
            "m:known": "1",
            "m:claims": "3",
        },
    )

    workers.start(1)
    wait_until(lambda: emulator_admin.contact(pending), timeout_s=30, message="pending synced")
    contact = emulator_admin.contact(pending)
    assert contact["firstName"] == "Pat"
    assert contact["fieldValues"] == {"6": "2008-01-20"}
    wait_until(lambda: drained(redis_conn, keys), timeout_s=15, message="nothing left due")

    checked = [line for line in workers.all_log_lines() if line["event"] == "store.layout_checked"]
    assert [line["migrated"] for line in checked] == [2]
    assert redis_conn.get(keys.layout) == b"2"
    assert sorted(redis_conn.hkeys(keys.contact(known))) == [b"c:l", b"m:known"]

    # The known contact's confirmed order survived: an older lastName is stale, a newer one
    # (and only it) is sent.
    producer.contact_changed(known, last_name="Older", occurred_at=at(-1))
    producer.contact_changed(known, last_name="Newer", occurred_at=at(+1))
    wait_until(lambda: emulator_admin.contact(known), timeout_s=30, message="newer change synced")
    wait_until(lambda: drained(redis_conn, keys), timeout_s=15, message="nothing left due")
    assert emulator_admin.contact(known)["lastName"] == "Newer"  # type: ignore[index]
    assert [item["email"] for item in emulator_admin.requests_log()] == [pending, known]
    assert int(redis_conn.hget(keys.stats, "events_stale")) == 1
