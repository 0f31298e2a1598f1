"""Shared fixtures: a private Redis, per-test key prefixes, and a clean environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
import structlog

from tests._redis_server import RedisServer, redis_required

_ENV_PREFIXES = ("CONTACT_SYNC_", "ACTIVECAMPAIGN_", "CELERY_")
_REAL_PROCESS_DIRS = ("tests/integration/", "tests/ops/", "tests/examples/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest first: slow scenarios, then the tests with real processes, then units.

    With ``make test`` (xdist, one test at a time per process) the long scenarios start at
    once and the short ones fill the gaps, instead of one long test starting last.
    """

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is not None:
            return 0
        path = item.path.as_posix()
        return 1 if any(part in path for part in _REAL_PROCESS_DIRS) else 2

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without contact-sync variables and with structlog's defaults."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the whole test session, on a free port."""
    try:
        server = RedisServer().start()
    except RuntimeError as exc:
        if redis_required():
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"no redis-server available: {exc}")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix(redis_server: RedisServer) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted before and after."""
    prefix = f"cs-test-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(redis_server.url)
    _delete_prefix(client, prefix)
    yield prefix
    _delete_prefix(client, prefix)
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
