"""``create_app(settings)`` runs in-process, in Celery's own testing worker: no environment,
no subprocess, nothing patched at import. Tests that kill nothing can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests.integration._harness import TOKEN, drained, wait_until
from worker.celery_app import create_app
from worker.keys import Keys
from worker.settings import Secret, Settings


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """The worker configures logging for its process; put the test process's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_restore_logging")
def test_an_in_process_worker_built_by_the_factory_syncs_contacts(
    redis_url: str,
    key_prefix: str,
    emulator: FakeActiveCampaign,
    emulator_admin: EmulatorClient,
    producer: ContactSyncProducer,
    redis_conn: Any,
    keys: Keys,
) -> None:
    """An app from create_app(settings) in celery.contrib.testing's worker pumps, merges and syncs 20 emails exactly, and stops its pump thread (releasing the lock) at shutdown."""
    settings = Settings(
        activecampaign_url=emulator.url,
        api_token=Secret(TOKEN),
        redis_url=redis_url,
        key_prefix=key_prefix,
        debounce_s=0.2,
        http_timeout_s=2.0,
        lease_s=12.0,
        pump_window_s=1.0,
        reclaim_idle_s=3.0,
    )
    app = create_app(settings)
    emails = [f"inproc{n}@example.com" for n in range(20)]
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False) as worker:
        producer.send_many({"email": email, "firstName": "Old"} for email in emails)
        producer.send_many({"email": email, "firstName": "New"} for email in emails)
        wait_until(
            lambda: len(emulator_admin.contacts()) == 20 and drained(redis_conn, keys),
            timeout_s=30,
            message="20 contacts synced by the in-process worker",
        )
        (step,) = [s for s in worker.blueprint.steps.values() if s.label == "contact-sync"]
        pump = step.pump
        assert pump is not None
        assert pump.is_alive()
    assert {emulator_admin.contact(email)["firstName"] for email in emails} == {"New"}
    assert emulator_admin.stats()["rate_limited"] == 0
    pump.join(timeout=2)
    assert not pump.is_alive()  # the bootstep stopped it with the worker
    assert redis_conn.get(keys.pump_lock) is None  # and released the lock
