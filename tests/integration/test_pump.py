"""The pump needs no beat, runs once at a time across workers, and starts due syncs promptly."""

from __future__ import annotations

import itertools
import re
import statistics
import time
from datetime import datetime
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import WorkerPool, wait_until
from worker.keys import Keys

_PUMP_DONE = re.compile(r"Task contact_sync\.pump\[[^\]]+\] succeeded in ([0-9.]+)s: (.*)")


def _pump_runs(pool: WorkerPool) -> list[tuple[float, float]]:
    """(start, end) of every pump task that actually ran (not skipped), from the worker logs."""
    runs = []
    for line in pool.all_log_lines():
        match = _PUMP_DONE.match(str(line.get("event", "")))
        if match and "skipped" not in match.group(2):
            end = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
            runs.append((end - float(match.group(1)), end))
    return sorted(runs)


def test_only_one_pump_runs_at_a_time_across_workers(
    workers: WorkerPool, producer: ContactSyncProducer
) -> None:
    """With three worker processes and no beat, pumps run back to back and never overlap."""
    workers.start(3, CONTACT_SYNC_DEBOUNCE_S="0.2")
    producer.send_many({"email": f"p{n}@example.com", "firstName": "P"} for n in range(20))
    wait_until(lambda: len(_pump_runs(workers)) >= 3, timeout_s=40, message="three pump runs")
    runs = _pump_runs(workers)
    for (_, previous_end), (start, _) in itertools.pairwise(runs):
        assert start >= previous_end - 0.05, f"pump runs overlap: {runs}"


@pytest.mark.slow
def test_due_syncs_start_promptly_without_beat(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """On an idle system an event reaches the API about debounce_s after it was sent, pump hand-overs included."""
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
        time.sleep(0.7)  # spread the samples over pump windows and hand-overs
    # The 0.5 s budget is the median; the worst sample is reported, not asserted (noisy machines).
    assert statistics.median(delays) <= 0.5, f"delays beyond debounce: {delays}"
