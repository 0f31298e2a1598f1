"""What a worker does when it starts and stops, as a Celery bootstep.

Start: check the API settings (a worker without them exits, naming the variable), apply
the two process-wide patches (``worker._kombu_fixes`` and JSON shutdown notices), and start
the pump trigger. Stop (warm shutdown): stop the trigger and ask this worker's pump, if it
runs one, to end its window now. The step requires the pool, so Celery stops it *before*
the pool, which would otherwise wait for the pump's whole window.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import celery.apps.worker
from celery import bootsteps

from worker._kombu_fixes import patch_redis_channel_close
from worker.errors import ConfigError
from worker.keys import Keys
from worker.logging import get_logger
from worker.pump_lock import request_pump_stop
from worker.redis_client import connect
from worker.trigger import PumpTrigger

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
        self.trigger: PumpTrigger | None = None

    def start(self, worker: Any) -> None:
        from worker.tasks import enqueue_pump

        app = worker.app
        timings = app.settings.timings
        self.trigger = PumpTrigger(
            connect(app.settings.redis_url),
            Keys(app.settings.key_prefix),
            lambda: enqueue_pump(app),
            node=worker.hostname,
            interval_s=timings.trigger_interval_s,
            trigger_ttl_s=timings.trigger_ttl_s,
        )
        self.trigger.start()

    def stop(self, worker: Any) -> None:
        trigger = self.trigger
        if trigger is None:
            return
        trigger.stop()
        try:
            asked = request_pump_stop(
                trigger.redis,
                trigger.keys,
                node=worker.hostname,
                ttl_s=worker.app.settings.timings.pump_lock_ttl_s,
            )
        except Exception as exc:  # Redis down: the pump then ends with its window
            log.warning("worker.pump_stop_failed", error=type(exc).__name__)
        else:
            if asked:
                log.info("worker.pump_stop_requested")
        self.trigger = None

    terminate = stop  # a cold shutdown (and the testing worker's) stops the same things


def _say_as_log(msg: str, f: Any = None) -> None:
    logging.getLogger("celery.apps.worker").warning(msg.strip())


def _apply_worker_patches() -> None:
    # Celery prints shutdown notices ("worker: Warm shutdown") with a bare print to stderr;
    # route them through logging so that every line a worker writes is a JSON object.
    celery.apps.worker.safe_say = _say_as_log
    # Without it a Redis restart can make the worker exit instead of reconnecting.
    patch_redis_channel_close()
