"""The pump needs no beat, runs once at a time across workers (a thread of one worker's main\nprocess, off the pool), is replaced at once when its worker stops, and starts due syncs\npromptly."""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, WorkerProcess, wait_until
from worker.keys import Keys
from worker.status import read_status


def _logged_at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def _holders(pool: WorkerPool) -> list[WorkerProcess]:
    return [worker for worker in pool.workers if worker.events_named("pump.started")]


def test_one_pump_across_workers_and_a_stopped_holder_is_replaced_at_once(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """Three worker processes, no beat: exactly one pumps (off the pool); when it shuts down another takes over within a second, and everything sent before and after is delivered."""
    workers.start(3, CONTACT_SYNC_DEBOUNCE_S="0.2")
    producer.send_many({"email": f"p{n}@example.com", "firstName": "P"} for n in range(20))
    wait_until(lambda: len(emulator_admin.contacts()) == 20, timeout_s=30, message="20 synced")
    (holder,) = _holders(workers)
    assert read_status(redis_conn, keys).pump_holder == f"{holder.name}@localhost"
    # Every worker's pool ran syncs, none ran a pump task: the pump holds no pool slot.
    assert not any("contact_sync.pump[" in line["event"] for line in workers.all_log_lines())

    assert holder.stop() == 0
    producer.send_many({"email": f"q{n}@example.com", "firstName": "Q"} for n in range(20))
    wait_until(lambda: len(emulator_admin.contacts()) == 40, timeout_s=30, message="40 synced")
    successors = [worker for worker in _holders(workers) if worker is not holder]
    assert len(successors) == 1
    (stopped,) = holder.events_named("pump.stopped")
    (started,) = successors[0].events_named("pump.started")
    takeover_s = _logged_at(started) - _logged_at(stopped)
    print(f"\npump takeover after a warm shutdown: {takeover_s:.2f} s")
    assert 0 <= takeover_s < 1.5


@pytest.mark.slow
def test_due_syncs_start_promptly_without_beat(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """On an idle system an event reaches the API about debounce_s after it was sent, while the pump runs window after window."""
    debounce_s = 1.0
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S=str(debounce_s))
    delays = []
    for n in range(8):
        email = f"prompt{n}@example.com"
        sent = time.time()
        producer.contact_changed(email, first_name="Quick")
        wait_until(
            lambda email=email: emulator_admin.contact(email),
            timeout_s=15,
            message=f"{email} synced",
        )
        arrival = next(
            item["t"] for item in emulator_admin.requests_log() if item.get("email") == email
        )
        delays.append(arrival - sent - debounce_s)
        time.sleep(0.7)  # spread the samples over pump windows
    # The 0.5 s budget is the median; the worst sample is reported, not asserted (noisy machines).
    assert statistics.median(delays) <= 0.5, f"delays beyond debounce: {delays}"
