"""The pump's lock: exactly one pump at a time across all hosts.

The lock is redis-py's ``Lock`` (a token-checked SET NX PX, renewed and released by Lua).
Its token starts with the Celery node name of the worker that runs the pump, so
``contact-sync status`` and an operator reading Redis can tell which worker pumps.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

import redis
from redis.exceptions import LockError

from worker.keys import Keys

__all__ = ["PumpLock"]


class PumpLock:
    """Held by the one running pump; ``keep()`` renews it and says whether to go on.

    ``stop()`` (from another thread: the worker shutting down) makes the next ``keep()``
    say no, so the pump ends within a cycle.
    """

    def __init__(self, client: redis.Redis, keys: Keys, *, node: str, ttl_s: float) -> None:
        self.redis: Any = client  # redis-py types replies as Awaitable | Any
        self.keys = keys
        self.token = f"{node}/{uuid.uuid4().hex}"
        # thread_local=False: the token belongs to the pump, whichever thread renews it.
        self._lock = client.lock(keys.pump_lock, timeout=ttl_s, thread_local=False)
        self._stopping = threading.Event()

    @property
    def stop_requested(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()

    def acquire(self) -> bool:
        """Take the lock if no pump holds it. Never waits."""
        return bool(self._lock.acquire(blocking=False, token=self.token))

    def keep(self) -> bool:
        """Renew the lock. False if it was lost, or if ``stop()`` was called."""
        if self._stopping.is_set():
            return False
        try:
            self._lock.reacquire()
        except LockError:
            return False
        return True

    def release(self) -> None:
        """Give the lock up (already lost is fine), so another worker's pump takes over."""
        with contextlib.suppress(LockError):
            self._lock.release()
