"""Warm shutdown: an idle worker exits within about a second of SIGTERM, a busy one as soon as
its requests in flight end, and nothing is lost.

The pump runs in a pool process for a window (CONTACT_SYNC_PUMP_WINDOW_S); the pool waits for
it on shutdown. The worker's bootstep now asks its pump to stop first, so the window no
longer sets the exit time. These tests use a 30 s window, so waiting it out would show.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, WorkerProcess, drained, wait_until
from worker.keys import Keys

LONG_WINDOW = {"CONTACT_SYNC_PUMP_WINDOW_S": "30", "CONTACT_SYNC_RECLAIM_IDLE_S": "61"}


def _sigterm_and_time_exit(worker: WorkerProcess, timeout_s: float = 60.0) -> float:
    assert worker.process is not None
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout_s)
    return time.monotonic() - started


def _pump_runs_in(worker: WorkerProcess, redis_conn: Any, keys: Keys) -> bool:
    holder = redis_conn.get(keys.pump_lock)
    return holder is not None and holder.decode().startswith(f"{worker.name}@")


def test_an_idle_worker_exits_within_seconds_of_sigterm(
    workers: WorkerPool, redis_conn: Any, keys: Keys
) -> None:
    """An idle worker whose pool runs the pump, with a 30 s pump window, exits cleanly within 5 s of SIGTERM."""
    (worker,) = workers.start(1, **LONG_WINDOW)
    wait_until(lambda: _pump_runs_in(worker, redis_conn, keys), timeout_s=20, message="pump")
    time.sleep(1)  # well inside the window
    exit_s = _sigterm_and_time_exit(worker)
    print(f"\nidle worker exited {exit_s:.2f} s after SIGTERM (pump window 30 s)")
    assert worker.process is not None
    assert worker.process.returncode == 0
    assert exit_s < 5.0
    assert worker.events_named("worker.pump_stop_requested")
    assert redis_conn.get(keys.pump_lock) is None  # released, not left to expire


def test_a_busy_worker_exits_when_its_requests_end_and_loses_nothing(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """SIGTERM during slow requests (1.5 s each, inside the 2 s HTTP timeout): the worker finishes them and exits well before the pump window ends; a second worker delivers the rest exactly."""
    (busy,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.1", **LONG_WINDOW)
    emulator_admin.set_faults(latency_ms=1500)
    emails = [f"busy{n}@example.com" for n in range(8)]
    producer.send_many({"email": email, "firstName": "B"} for email in emails)
    wait_until(lambda: emulator_admin.stats()["in_flight"] >= 1, timeout_s=20, message="a request")
    exit_s = _sigterm_and_time_exit(busy)
    in_flight_at_exit = emulator_admin.stats()["in_flight"]
    print(f"\nbusy worker exited {exit_s:.2f} s after SIGTERM (requests take 1.5 s)")
    assert busy.process is not None
    assert busy.process.returncode == 0
    assert exit_s < 10.0
    assert in_flight_at_exit == 0  # it waited for its requests instead of abandoning them
    assert busy.events_named("contact.synced")  # the requests in flight completed and were recorded

    emulator_admin.set_faults(latency_ms=0)
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.1")
    wait_until(
        lambda: len(emulator_admin.contacts()) == len(emails) and drained(redis_conn, keys),
        timeout_s=60,
        message="the rest delivered by the next worker",
    )
    assert all(emulator_admin.contact(email)["firstName"] == "B" for email in emails)
    assert redis_conn.xlen(keys.dead) == 0
