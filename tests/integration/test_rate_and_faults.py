"""The shared rate limit, retries with backoff, and 429 pauses, against real processes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests._redis_server import free_port
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from worker.keys import Keys


def _sync_times(admin: EmulatorClient) -> list[float]:
    return sorted(
        item["t"] for item in admin.requests_log() if item["path"] == "/api/3/contact/sync"
    )


@pytest.mark.slow
def test_two_workers_share_the_rate_limit_and_use_the_budget(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """Two worker processes drain 60 emails at >= 90% of 5 req/s, never above it in any calendar second, with at most one 429 (arrival jitter)."""
    workers.start(2, CONTACT_SYNC_DEBOUNCE_S="0.5")
    producer.send_many({"email": f"rate{n}@example.com", "firstName": f"N{n}"} for n in range(60))
    wait_until(
        lambda: len(emulator_admin.contacts()) == 60 and drained(redis_conn, keys),
        timeout_s=60,
        message="drain",
    )
    stats = emulator_admin.stats()
    # The emulator counts a sliding second by arrival; on this CPU-bound suite a request
    # can reach it over 50 ms late (the limiter's margin), letting the next one in the same
    # second. `make bench` measures zero 429s on a quiet machine; more than one here is a bug.
    assert stats["rate_limited"] <= 1
    assert stats["max_per_second"] <= 5
    times = _sync_times(emulator_admin)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= 0.9 * 5, f"achieved {achieved:.2f} req/s"


def test_retry_after_pauses_every_worker(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """After a 429 with Retry-After: 2, no worker sends any request for 2 seconds."""
    workers.start(2, CONTACT_SYNC_DEBOUNCE_S="0.1")
    emulator_admin.set_faults(force_status={"status": 429, "count": 1, "retry_after": "2"})
    producer.contact_changed("first@example.com", first_name="F")
    wait_until(lambda: emulator_admin.stats()["rate_limited"] == 1, timeout_s=20, message="the 429")
    producer.send_many({"email": f"pause{n}@example.com", "firstName": "P"} for n in range(7))
    wait_until(
        lambda: len(emulator_admin.contacts()) == 8 and drained(redis_conn, keys),
        timeout_s=40,
        message="drain",
    )
    log = sorted(emulator_admin.requests_log(), key=lambda item: item["t"])
    (limited,) = [item for item in log if item["status"] == 429]
    after = [item["t"] - limited["t"] for item in log if item["t"] > limited["t"]]
    assert len(after) == 8
    assert min(after) >= 2.0, f"a request {min(after):.3f}s after the 429"


def test_server_errors_and_timeouts_are_retried_until_success(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """503s and read timeouts are retried with growing jittered backoff until every contact syncs."""
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    emulator_admin.set_faults(outage={"mode": "503", "seconds": 3})
    producer.send_many({"email": f"flaky{n}@example.com", "phone": str(n)} for n in range(5))
    time.sleep(3)
    emulator_admin.set_faults(outage={"mode": "hang", "seconds": 3}, hang_s=3)
    wait_until(
        lambda: len(emulator_admin.contacts()) == 5 and drained(redis_conn, keys),
        timeout_s=60,
        message="recovery",
    )
    retries = [line for line in worker.log_lines() if line.get("event") == "contact.sync_retry"]
    assert {line["error"] for line in retries} >= {"ApiServerError", "ApiTransportError"}
    assert len({line["delay_s"] for line in retries}) > 1  # jittered, not a fixed delay
    assert redis_conn.xlen(keys.dead) == 0


def test_refused_connections_are_retried(
    workers: WorkerPool, producer: ContactSyncProducer, redis_conn: Any, keys: Keys
) -> None:
    """With nothing listening, syncs retry; once the API comes up they are delivered."""
    port = free_port()
    (worker,) = workers.start(
        1, CONTACT_SYNC_DEBOUNCE_S="0.2", ACTIVECAMPAIGN_URL=f"http://127.0.0.1:{port}"
    )
    producer.contact_changed("refused@example.com", first_name="R")
    wait_until(
        lambda: any(line.get("error") == "ApiTransportError" for line in worker.log_lines()),
        timeout_s=20,
        message="a transport retry",
    )
    with FakeActiveCampaign(port=port, api_token=TOKEN) as late_api:
        admin = EmulatorClient(late_api.url)
        wait_until(
            lambda: admin.contacts().get("refused@example.com"),
            timeout_s=30,
            message="delivery after outage",
        )
        wait_until(lambda: drained(redis_conn, keys), timeout_s=10, message="drained")
