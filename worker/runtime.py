"""Per-process objects the tasks share: built lazily, and again after a fork.

Redis connections and HTTP sessions must not cross a fork, so each worker process (the
prefork pool's children included) builds its own on first use.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from worker.bulk_store import BulkStore
from worker.catalog import Catalog, Kind
from worker.client import ActiveCampaignClient
from worker.errors import ApiServerError, ApiTransportError
from worker.isolation import FAILING_PROBE_S, DestinationFailing
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.redis_client import connect
from worker.resolve import Resolver
from worker.settings import Settings
from worker.store import MergeStore

__all__ = ["Runtime", "get_runtime", "limited_fetch"]


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pid: int
    redis: redis.Redis
    keys: Keys
    store: MergeStore
    limiter: RateLimiter
    client: ActiveCampaignClient
    catalog: Catalog
    resolver: Resolver
    rng: random.Random
    bulk: BulkStore
    bulk_limiter: RateLimiter  # bulk import's own 100 requests a minute


_runtimes: dict[str, Runtime] = {}


def get_runtime(settings: Settings, destination: str | None = None) -> Runtime:
    """This process's Runtime for one destination of ``settings`` (``settings.destination``
    unless named), built on first use, and again after a fork or for other settings.

    Raises ``UnknownDestination`` for a name the settings do not define.
    """
    settings = settings.for_destination(destination or settings.destination)
    runtime = _runtimes.get(settings.destination)
    if runtime is None or runtime.pid != os.getpid() or runtime.settings is not settings:
        runtime = _runtimes[settings.destination] = _build(settings)
    return runtime


def _build(settings: Settings) -> Runtime:
    settings.require_api()
    if settings.activecampaign_url is None or settings.api_token is None:  # for mypy
        raise RuntimeError("require_api() let a missing API setting through")
    client = connect(settings.redis_url)
    keys = Keys(settings.key_prefix, settings.destination)
    limiter = RateLimiter(
        client, keys, rate_per_s=settings.rate_limit, margin_ms=settings.rate_margin_ms
    )
    api = ActiveCampaignClient(
        settings.activecampaign_url, settings.api_token, timeout_s=settings.http_timeout_s
    )
    store = MergeStore(
        client,
        keys,
        dead_letter_max_count=settings.dead_letter_max_count,
        dead_letter_max_age_s=settings.dead_letter_max_age_s,
    )
    # A catalog read waits at most a pump window per page: it may run inside the pump. With
    # several destinations, a failing one's reads fail at once instead of holding the pump.
    health = store if len(settings.destination_names) > 1 else None
    catalog = Catalog(
        client,
        keys,
        fetch=limited_fetch(api, limiter, max_wait_s=settings.pump_window_s, health=health),
    )
    return Runtime(
        settings=settings,
        pid=os.getpid(),
        redis=client,
        keys=keys,
        store=store,
        limiter=limiter,
        client=api,
        catalog=catalog,
        resolver=Resolver(catalog),
        rng=random.Random(),
        bulk=BulkStore(client, keys),
        bulk_limiter=RateLimiter.bulk(client, keys, per_minute=settings.bulk_rate_per_min),
    )


def limited_fetch(
    api: ActiveCampaignClient,
    limiter: RateLimiter,
    *,
    max_wait_s: float,
    health: MergeStore | None = None,
) -> Callable[[Kind], Iterator[dict[str, Any]]]:
    """Catalog pages read through the shared rate limiter, like every other request.

    With ``health`` (several destinations), a read for a destination marked failing fails at
    once, and a read that times out or gets a 5xx marks it failing: the pump, which reads
    catalogs, then defers that destination's entries rather than wait on it for every one.
    """

    def slot() -> None:
        if health is not None and health.is_failing():
            raise DestinationFailing("the destination is failing; catalog read deferred")
        if not limiter.acquire(max_wait_s=max_wait_s).ok:
            raise ApiTransportError("no rate-limiter slot for a catalog read in time")

    def fetch(kind: Kind) -> Iterator[dict[str, Any]]:
        try:
            yield from api.catalog(kind, before_request=slot)
        except DestinationFailing:
            raise
        except (ApiServerError, ApiTransportError):
            if health is not None:
                health.mark_failing(FAILING_PROBE_S)
            raise

    return fetch
