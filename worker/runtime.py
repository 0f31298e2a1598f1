"""Per-process objects the tasks share: built lazily, and again after a fork.

Redis connections and HTTP sessions must not cross a fork, so each worker process (the
prefork pool's children included) builds its own on first use.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import redis

from worker.client import ActiveCampaignClient
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.settings import Settings
from worker.store import MergeStore

__all__ = ["Runtime", "get_runtime", "redis_client"]

_runtime: Runtime | None = None
_runtime_pid: int | None = None


def redis_client(settings: Settings) -> redis.Redis:
    """A Redis client for the worker side, with timeouts and health checks.

    Retries and the health check let a worker ride out a Redis restart without a restart
    of its own; the socket timeout stays above the pump's XREADGROUP block time.
    """
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=15.0,
        socket_connect_timeout=5.0,
        health_check_interval=15,
        retry_on_timeout=True,
    )


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    redis: redis.Redis
    keys: Keys
    store: MergeStore
    limiter: RateLimiter
    client: ActiveCampaignClient
    rng: random.Random


def get_runtime(settings: Settings) -> Runtime:
    """This process's Runtime, built on first use (and again in a forked child)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        settings.require_api()
        if settings.activecampaign_url is None or settings.api_token is None:  # for mypy
            raise RuntimeError("require_api() let a missing API setting through")
        client = redis_client(settings)
        keys = Keys(settings.key_prefix)
        _runtime = Runtime(
            settings=settings,
            redis=client,
            keys=keys,
            store=MergeStore(client, keys),
            limiter=RateLimiter(
                client, keys, rate_per_s=settings.rate_limit, margin_ms=settings.rate_margin_ms
            ),
            client=ActiveCampaignClient(
                settings.activecampaign_url, settings.api_token, timeout_s=settings.http_timeout_s
            ),
            rng=random.Random(),
        )
        _runtime_pid = os.getpid()
    return _runtime
