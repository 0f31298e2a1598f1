"""Keeps a pump running without celery beat: a small thread in each worker's main process.

Every tick it checks whether a pump holds the lock; if none does, and no other worker has
just asked for one (the trigger key), it enqueues ``contact_sync.pump``. Running
``celery -A worker worker`` alone is therefore enough, on any number of hosts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from worker.keys import Keys
from worker.logging import get_logger

__all__ = ["PumpTrigger"]

log = get_logger("contact_sync.trigger")


class PumpTrigger(threading.Thread):
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        enqueue_pump: Callable[[], None],
        *,
        node: str,
        interval_s: float = 0.5,
        trigger_ttl_s: float = 10.0,
    ) -> None:
        super().__init__(name="contact-sync-pump-trigger", daemon=True)
        self.redis = client
        self.keys = keys
        self.enqueue_pump = enqueue_pump
        self.node = node
        self.interval_s = interval_s
        self.trigger_ttl_ms = int(trigger_ttl_s * 1000)
        self._stopping = threading.Event()
        self._healthy = True

    def tick(self) -> bool:
        """Enqueue a pump if none runs and none is on its way. Returns True if it did."""
        if self.redis.exists(self.keys.pump_lock):
            return False
        if not self.redis.set(self.keys.pump_trigger, self.node, nx=True, px=self.trigger_ttl_ms):
            return False
        self.enqueue_pump()
        return True

    def run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:
                if self._healthy:
                    log.warning("pump_trigger.error", error=type(exc).__name__, detail=str(exc))
                self._healthy = False
            else:
                if not self._healthy:
                    log.info("pump_trigger.recovered")
                self._healthy = True

    def stop(self) -> None:
        self._stopping.set()
