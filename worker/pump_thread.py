"""Runs the pump in a thread of each worker's main process, off the Celery pool.

Every worker has one such thread. The one that holds the pump lock (``worker/pump_lock.py``)
pumps window after window, renewing the lock every cycle; the others try to take the lock
every ``retry_s``, so a pump whose worker died is replaced within its lock's TTL plus a
retry. No pool slot is ever taken by the pump, nothing is queued for it, and no celery beat
is needed: ``celery -A worker worker`` alone is enough, on any number of hosts.

A warm shutdown stops the thread within a cycle (``PumpLock.stop``) and releases the lock,
so another worker takes over at its next retry instead of after the lock's TTL.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from worker.logging import get_logger
from worker.pump import Pump, PumpReport
from worker.pump_lock import PumpLock

__all__ = ["PumpThread"]

log = get_logger("contact_sync.pump")


class PumpThread(threading.Thread):
    def __init__(
        self,
        make_lock: Callable[[], PumpLock],
        make_pump: Callable[[], Pump],
        *,
        retry_s: float = 0.5,
        on_report: Callable[[PumpReport], Any] = lambda report: None,
    ) -> None:
        super().__init__(name="contact-sync-pump", daemon=True)
        self.make_lock = make_lock
        self.make_pump = make_pump
        self.retry_s = retry_s
        self.on_report = on_report
        self._stopping = threading.Event()
        self._lock: PumpLock | None = None
        self._healthy = True

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                pumped = self._pump_while_holding_the_lock()
            except Exception as exc:  # Redis down, say: try again at the next retry
                self._unhealthy(exc)
                pumped = False
            else:
                self._recovered()
            if not pumped:
                self._stopping.wait(self.retry_s)

    def stop(self, timeout_s: float | None = None) -> None:
        """End the pump within a cycle, release its lock, and wait for the thread."""
        self._stopping.set()
        lock = self._lock
        if lock is not None:
            lock.stop()
        if self.is_alive():
            self.join(timeout_s)

    def _pump_while_holding_the_lock(self) -> bool:
        lock = self.make_lock()
        if not lock.acquire():
            return False
        self._lock = lock
        if self._stopping.is_set():  # stop() came between acquire and publishing the lock
            lock.stop()
        log.info("pump.started", holder=lock.token)
        reason = "error"  # unless the loop below ends normally
        try:
            pump = self.make_pump()
            while not lock.stop_requested:
                report = pump.run(lock)
                self.on_report(report)
                if not lock.stop_requested and not lock.keep():
                    break
            reason = "stopped" if lock.stop_requested else "lock_lost"
        finally:
            self._lock = None
            log.info("pump.stopped", holder=lock.token, reason=reason)
            with contextlib.suppress(Exception):  # Redis down: the lock expires on its own
                lock.release()
        return True

    def _unhealthy(self, exc: Exception) -> None:
        if self._healthy:
            log.warning("pump.error", error=type(exc).__name__, detail=str(exc))
        self._healthy = False

    def _recovered(self) -> None:
        if not self._healthy:
            log.info("pump.recovered")
        self._healthy = True
