"""Housekeeping in the merge store: consumer names do not pile up."""

from __future__ import annotations

import redis

from worker.keys import CONSUMER_GROUP, Keys
from worker.store import MergeStore


def test_prune_consumers_forgets_idle_empty_consumers_only(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Idle consumers without pending entries are removed; ones holding entries, and ourselves, stay."""
    keys = Keys(key_prefix)
    store = MergeStore(redis_client, keys)
    store.ensure_group()
    redis_client.xadd(keys.events, {"event": "{}"})
    store.read_events("holder", count=1, block_ms=None)
    redis_client.xgroup_createconsumer(keys.events, CONSUMER_GROUP, "idle")
    redis_client.xgroup_createconsumer(keys.events, CONSUMER_GROUP, "me")
    removed = store.prune_consumers(min_idle_ms=0, keep="me")
    names = {
        item["name"].decode() for item in redis_client.xinfo_consumers(keys.events, CONSUMER_GROUP)
    }
    assert removed == 1
    assert names == {"holder", "me"}


def test_prune_consumers_keeps_recently_active_ones(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A consumer idle for less than the limit is kept."""
    keys = Keys(key_prefix)
    store = MergeStore(redis_client, keys)
    store.ensure_group()
    redis_client.xgroup_createconsumer(keys.events, CONSUMER_GROUP, "recent")
    assert store.prune_consumers(min_idle_ms=60_000, keep="me") == 0
