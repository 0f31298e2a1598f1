"""Warm shutdown: an idle worker exits within seconds of SIGTERM, a busy one as soon as its
requests in flight end, and nothing is lost.

The pump runs in a thread of the worker's main process, window after window
(CONTACT_SYNC_PUMP_WINDOW_S). The worker's bootstep stops it within a cycle at shutdown, so
the window does not set the exit time. These tests use a 30 s window, so waiting it out
would show; when the pump was a pool task with a fixed 5 s window, SIGTERM just after a
window began took 6 to 7 s. What is left, about 2.5 s, is Celery stopping its prefork pool
(a `--pool solo` worker exits in about 1 s).
"""

from __future__ import annotations

import datetime as dt
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


def _logged_at(line: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))


def _pump_end_after_sigterm_s(worker: WorkerProcess) -> float:
    """Seconds from Celery's "Warm shutdown" line to the pump's "pump.stopped"."""
    lines = worker.log_lines()
    (shutdown,) = [line for line in lines if "Warm shutdown" in line["event"]]
    ended = [
        line
        for line in lines
        if line["event"] == "pump.stopped" and _logged_at(line) >= _logged_at(shutdown)
    ]
    assert ended, "the pump did not stop after the shutdown began"
    assert ended[0]["reason"] == "stopped"
    return (_logged_at(ended[0]) - _logged_at(shutdown)).total_seconds()


def _pump_started(worker: WorkerProcess) -> bool:
    return bool(worker.events_named("pump.started"))


def test_an_idle_worker_exits_within_seconds_of_sigterm(
    workers: WorkerPool, redis_conn: Any, keys: Keys
) -> None:
    """An idle worker, SIGTERMed half a second into a 30 s pump window, stops its pump at once and exits cleanly in seconds, not at the window's end."""
    (worker,) = workers.start(1, **LONG_WINDOW)
    wait_until(lambda: _pump_started(worker), timeout_s=20, message="a pump window began")
    time.sleep(0.5)
    exit_s = _sigterm_and_time_exit(worker)
    pump_end_s = _pump_end_after_sigterm_s(worker)
    print(
        f"\nidle worker: pump ended {pump_end_s:.2f} s and the process {exit_s:.2f} s after SIGTERM"
    )
    assert worker.process is not None
    assert worker.process.returncode == 0
    assert pump_end_s < 2.0
    # About 2.5 s on a quiet machine, nearly all of it Celery stopping its prefork pool;
    # the bound leaves room for a loaded one and still proves the window is not waited out.
    assert exit_s < 8.0
    assert worker.events_named("worker.pump_stopped")
    assert redis_conn.get(keys.pump_lock) is None  # released, not left to expire


def test_a_busy_worker_exits_when_its_requests_end_and_loses_nothing(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """SIGTERM during slow requests (1.5 s each, inside the 2 s HTTP timeout): the worker finishes them, stops its pump at once instead of at the window's end, exits, and a second worker delivers the rest exactly."""
    (busy,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.1", **LONG_WINDOW)
    emulator_admin.set_faults(latency_ms=1500)
    emails = [f"busy{n}@example.com" for n in range(8)]
    producer.send_many({"email": email, "firstName": "B"} for email in emails)
    wait_until(lambda: emulator_admin.stats()["in_flight"] >= 1, timeout_s=20, message="a request")
    exit_s = _sigterm_and_time_exit(busy)
    in_flight_at_exit = emulator_admin.stats()["in_flight"]
    pump_end_s = _pump_end_after_sigterm_s(busy)
    print(
        f"\nbusy worker: pump ended {pump_end_s:.2f} s and the process {exit_s:.2f} s after SIGTERM"
    )
    assert busy.process is not None
    assert busy.process.returncode == 0
    assert pump_end_s < 2.0
    assert exit_s < 10.0
    assert in_flight_at_exit == 0  # it waited for its requests instead of abandoning them
    assert busy.events_named("contact.synced")  # and recorded their outcomes

    emulator_admin.set_faults(latency_ms=0)
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.1")
    wait_until(
        lambda: len(emulator_admin.contacts()) == len(emails) and drained(redis_conn, keys),
        timeout_s=60,
        message="the rest delivered by the next worker",
    )
    assert all(emulator_admin.contact(email)["firstName"] == "B" for email in emails)
    assert redis_conn.xlen(keys.dead) == 0
