"""The pump's lock: exactly one pump at a time across all hosts, and a way to ask it to stop.

The lock is redis-py's ``Lock`` (a token-checked SET NX PX, renewed and released by Lua).
Its token starts with the Celery node name of the worker whose pool runs the pump, so that
worker's main process can find "my pump" when it shuts down and ask it to stop through
``{prefix}:pump:stop``. The pump reads that key each cycle, so an idle worker exits within
a cycle of SIGTERM instead of waiting out the pump's window.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import redis
from redis.exceptions import LockError

from worker.keys import Keys
from worker.redis_client import text

__all__ = ["PumpLock", "request_pump_stop"]


class PumpLock:
    """Held by the one running pump; ``keep()`` renews it and says whether to go on."""

    def __init__(self, client: redis.Redis, keys: Keys, *, node: str, ttl_s: float) -> None:
        self.redis: Any = client  # redis-py types replies as Awaitable | Any
        self.keys = keys
        self.token = f"{node}/{uuid.uuid4().hex}"
        # thread_local=False: the token belongs to the pump, whichever thread renews it.
        self._lock = client.lock(keys.pump_lock, timeout=ttl_s, thread_local=False)
        self.stop_requested = False

    def acquire(self) -> bool:
        """Take the lock if no pump holds it. Never waits."""
        return bool(self._lock.acquire(blocking=False, token=self.token))

    def keep(self) -> bool:
        """Renew the lock. False if it was lost, or if this pump's worker asked it to stop."""
        try:
            self._lock.reacquire()
        except LockError:
            return False
        self.stop_requested = text(self.redis.get(self.keys.pump_stop) or b"") == self.token
        return not self.stop_requested

    def release(self) -> None:
        """Clear a stop request for this pump, then give the lock up (already lost is fine)."""
        # While the lock is ours, the stop key can only name this pump (or an old one).
        self.redis.delete(self.keys.pump_stop)
        with contextlib.suppress(LockError):
            self._lock.release()


def request_pump_stop(client: redis.Redis, keys: Keys, *, node: str, ttl_s: float) -> bool:
    """Ask the pump to stop if it runs in ``node``'s pool. Returns True if it was asked.

    Called by a worker's main process when it shuts down: its pool would otherwise wait
    for the pump to finish its window. A pump on another node is left alone.
    """
    holder: bytes | None = client.get(keys.pump_lock)  # type: ignore[assignment]
    if holder is None or not text(holder).startswith(f"{node}/"):
        return False
    client.set(keys.pump_stop, holder, px=int(ttl_s * 1000))
    return True
