"""What a worker does when it starts and stops, as a Celery bootstep.

Start: check the API settings (a worker without them exits, naming the variable), apply
the two process-wide patches (``worker._kombu_fixes`` and JSON shutdown notices), and start
the pump thread (``worker/pump_thread.py``). Stop (warm shutdown): end the pump within a
cycle and release its lock, so another worker's thread takes over at once. The step
requires the pool, so Celery stops it before the pool, whose sync tasks then finish.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import celery.apps.worker
from celery import bootsteps

from worker._kombu_fixes import patch_redis_channel_close
from worker.errors import ConfigError
from worker.logging import get_logger
from worker.pump_lock import PumpLock
from worker.pump_thread import PumpThread
from worker.runtime import get_runtime

__all__ = ["ContactSyncStep"]

log = get_logger("contact_sync.worker")


class ContactSyncStep(bootsteps.StartStopStep):  # type: ignore[misc]
    requires = {"celery.worker.components:Pool"}
    label = "contact-sync"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        settings = worker.app.settings
        try:
            settings.require_api()
        except ConfigError as exc:
            print(f"contact-sync: configuration error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        _apply_worker_patches()
        self.pump: PumpThread | None = None

    def start(self, worker: Any) -> None:
        from worker.tasks import build_pump, log_pump_report

        app = worker.app
        timings = app.settings.timings

        def make_lock() -> PumpLock:
            runtime = get_runtime(app.settings, app.settings.destination_names[0])
            return PumpLock(
                runtime.redis, runtime.keys, node=worker.hostname, ttl_s=timings.pump_lock_ttl_s
            )

        self.pump = PumpThread(
            make_lock,
            lambda: build_pump(app),
            retry_s=timings.pump_retry_s,
            on_report=log_pump_report,
        )
        self.pump.start()

    def stop(self, worker: Any) -> None:
        pump, self.pump = self.pump, None
        if pump is not None:
            # A cycle blocks on Redis for at most 100 ms; a catalog read in it, longer.
            pump.stop(timeout_s=worker.app.settings.timings.pump_window_s)
            log.info("worker.pump_stopped", alive=pump.is_alive())

    terminate = stop  # a cold shutdown (and the testing worker's) stops the same things


def _say_as_log(msg: str, f: Any = None) -> None:
    logging.getLogger("celery.apps.worker").warning(msg.strip())


def _apply_worker_patches() -> None:
    # Celery prints shutdown notices ("worker: Warm shutdown") with a bare print to stderr;
    # route them through logging so that every line a worker writes is a JSON object.
    celery.apps.worker.safe_say = _say_as_log
    # Without it a Redis restart can make the worker exit instead of reconnecting.
    patch_redis_channel_close()
