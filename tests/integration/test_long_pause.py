"""A long Retry-After: nothing is leased and nothing spins while the account is paused.

The limiter's pause used to outlast a sync's longest limiter wait; the sync then handed the
email back due at once, and the pump leased it again every cycle for the whole pause
(about 1,100 Redis commands a second and 100 Celery tasks a second, measured with a 60 s
Retry-After). Now claim.lua leases nothing during a pause, and a deferred email is due when
the pause ends.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, drained, wait_until
from worker.keys import Keys

RETRY_AFTER_S = 60
WATCH_S = 8.0


def _commands(client: Any) -> int:
    return int(client.info("stats")["total_commands_processed"])


def _claims(client: Any, keys: Keys) -> int:
    return int(client.get(keys.claims) or 0)


def _rate(client: Any, keys: Keys, seconds: float) -> tuple[float, int]:
    """(Redis commands per second, claims made) over the next ``seconds``."""
    commands, claims = _commands(client), _claims(client, keys)
    time.sleep(seconds)
    return (_commands(client) - commands) / seconds, _claims(client, keys) - claims


@pytest.mark.slow
def test_a_60s_retry_after_leases_nothing_and_costs_no_more_than_idle(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """With Retry-After: 60 and 5 emails waiting, the pause makes no claims, no sync tasks and at most twice the idle Redis command rate; after it, every email is delivered."""
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.1")
    wait_until(lambda: redis_conn.exists(keys.pump_lock), timeout_s=20, message="a pump")
    idle_rate, _ = _rate(redis_conn, keys, WATCH_S / 2)

    emulator_admin.set_faults(
        force_status={"status": 429, "count": 1, "retry_after": str(RETRY_AFTER_S)}
    )
    producer.contact_changed("first@example.com", first_name="F")
    wait_until(lambda: emulator_admin.stats()["rate_limited"] == 1, timeout_s=20, message="429")
    producer.send_many({"email": f"paused{n}@example.com", "firstName": "P"} for n in range(5))
    wait_until(lambda: redis_conn.zcard(keys.due) == 6, timeout_s=10, message="six emails due")
    outcomes_before = len(worker.events_named("contact.sync_deferred"))

    paused_rate, claims = _rate(redis_conn, keys, WATCH_S)

    print(
        f"\nRedis commands/s: idle {idle_rate:.0f}, paused {paused_rate:.0f}; "
        f"claims during {WATCH_S:.0f} s of pause: {claims}"
    )
    assert claims == 0
    assert len(worker.events_named("contact.sync_deferred")) == outcomes_before
    assert redis_conn.zcard(keys.leases) == 0
    assert paused_rate <= 2 * idle_rate + 20, f"idle {idle_rate:.0f}/s, paused {paused_rate:.0f}/s"
    assert emulator_admin.stats()["requests_total"] == 1  # only the 429

    # End the pause early (as if 60 s had passed), and nothing that waited is lost.
    redis_conn.delete(keys.rate_pause)
    redis_conn.zadd(keys.due, dict.fromkeys(redis_conn.zrange(keys.due, 0, -1), 0), xx=True)
    wait_until(
        lambda: len(emulator_admin.contacts()) == 6 and drained(redis_conn, keys),
        timeout_s=30,
        message="delivery after the pause",
    )
