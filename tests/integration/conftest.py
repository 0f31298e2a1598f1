"""Integration fixtures: the HTTP emulator, worker processes, and a producer, all real."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests.integration._harness import TOKEN, WorkerPool
from worker.keys import Keys

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def emulator() -> Iterator[FakeActiveCampaign]:
    server = FakeActiveCampaign(api_token=TOKEN, rate_limit=5.0).start()
    yield server
    server.stop()


@pytest.fixture
def emulator_admin(emulator: FakeActiveCampaign) -> EmulatorClient:
    return EmulatorClient(emulator.url)


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def worker_env(redis_url: str, key_prefix: str, emulator: FakeActiveCampaign) -> dict[str, str]:
    """The environment of a worker process talking to this test's Redis prefix and emulator."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CONTACT_SYNC_", "ACTIVECAMPAIGN_", "CELERY_"))
    }
    repo = str(Path(__file__).resolve().parents[2])
    env.update(
        PYTHONPATH=repo,
        PYTHONUNBUFFERED="1",
        ACTIVECAMPAIGN_URL=emulator.url,
        ACTIVECAMPAIGN_API_TOKEN=TOKEN,
        CONTACT_SYNC_REDIS_URL=redis_url,
        CONTACT_SYNC_KEY_PREFIX=key_prefix,
        CONTACT_SYNC_DEBOUNCE_S="1",
        CONTACT_SYNC_BACKOFF_BASE_S="0.2",
        CONTACT_SYNC_BACKOFF_CAP_S="2",
        CONTACT_SYNC_CONFIG_ERROR_BACKOFF_S="1",
        CONTACT_SYNC_HTTP_TIMEOUT_S="2",
        # Short timings, so crash scenarios recover in seconds (worker/timings.py checks
        # them): a 12 s lease (the least a 2 s timeout allows is 11 s), a 1 s pump window
        # (the lock lasts 2 s) and entries reclaimed from a dead consumer after 3 s.
        CONTACT_SYNC_LEASE_S="12",
        CONTACT_SYNC_PUMP_WINDOW_S="1",
        CONTACT_SYNC_RECLAIM_IDLE_S="3",
        CONTACT_SYNC_LOG_LEVEL="INFO",
        # The sync path's tests keep bulk import out of their way; tests/integration/
        # test_bulk*.py turn it on.
        CONTACT_SYNC_BULK_MIN_BACKLOG="0",
    )
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(worker_env, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def producer(redis_url: str, key_prefix: str) -> Iterator[ContactSyncProducer]:
    instance = ContactSyncProducer(redis_url, key_prefix, source="tests")
    yield instance
    instance.close()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
