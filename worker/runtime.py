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
from worker.redis_client import connect
from worker.settings import Settings
from worker.store import MergeStore

__all__ = ["Runtime", "get_runtime"]


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pid: int
    redis: redis.Redis
    keys: Keys
    store: MergeStore
    limiter: RateLimiter
    client: ActiveCampaignClient
    rng: random.Random


_runtime: Runtime | None = None


def get_runtime(settings: Settings) -> Runtime:
    """This process's Runtime for ``settings``, built on first use (and again after a fork)."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid() or _runtime.settings is not settings:
        _runtime = _build(settings)
    return _runtime


def _build(settings: Settings) -> Runtime:
    settings.require_api()
    if settings.activecampaign_url is None or settings.api_token is None:  # for mypy
        raise RuntimeError("require_api() let a missing API setting through")
    client = connect(settings.redis_url)
    keys = Keys(settings.key_prefix)
    return Runtime(
        settings=settings,
        pid=os.getpid(),
        redis=client,
        keys=keys,
        store=MergeStore(
            client,
            keys,
            dead_letter_max_count=settings.dead_letter_max_count,
            dead_letter_max_age_s=settings.dead_letter_max_age_s,
        ),
        limiter=RateLimiter(
            client, keys, rate_per_s=settings.rate_limit, margin_ms=settings.rate_margin_ms
        ),
        client=ActiveCampaignClient(
            settings.activecampaign_url, settings.api_token, timeout_s=settings.http_timeout_s
        ),
        rng=random.Random(),
    )
