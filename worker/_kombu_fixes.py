"""A workaround for kombu's Redis transport, so a worker survives a Redis restart.

kombu 5.7's Redis ``Channel.close()`` makes Redis calls before it marks the channel closed.
When Redis goes away, Celery's consumer closes the broken connection twice: ``collect()``
first (whose channel close fails half-way, so the channel stays open, and which then detaches
the transport from its connection), then ``close()``. The second channel close tries to put
the unacknowledged messages back, needs the broker address for a new Redis client, finds the
transport detached, and raises ``AttributeError``. That is not a connection error, so Celery
logs "Unrecoverable error" and the worker exits instead of reconnecting. It happened in about
one Redis restart in ten (``tests/integration/test_redis_restart.py``).

Raising a connection error there instead lets Celery carry on and reconnect. The messages it
could not put back stay in kombu's unacked hash until its visibility timeout; nothing depends
on them, because every sync lease and the pump lock expire long before that.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["patch_redis_channel_close"]


def patch_redis_channel_close() -> None:
    """Make a Redis channel of a detached transport raise ConnectionError. Idempotent."""
    channel: Any = kombu_redis.Channel
    original = channel._connparams
    if getattr(original, "_contact_sync_patched", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise redis.ConnectionError("the broker connection was already closed")
        return original(self, asynchronous)

    _connparams._contact_sync_patched = True  # type: ignore[attr-defined]
    channel._connparams = _connparams
