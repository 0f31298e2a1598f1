"""The Celery tasks. Thin: decode arguments, call a plain function, log the outcome.

``register_tasks(app)`` adds them to an app built by ``worker.celery_app.create_app``; the
settings come from that app, never from module state.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from celery import Task

from worker.logging import get_logger, mask_email
from worker.metrics import record_outcome
from worker.pump import Pump
from worker.pump_lock import PumpLock
from worker.runtime import get_runtime
from worker.store import Claim, InvalidEntry
from worker.sync import sync_contact as run_sync

if TYPE_CHECKING:
    from worker.celery_app import ContactSyncCelery

__all__ = ["PUMP_TASK", "SYNC_TASK", "enqueue_pump", "enqueue_sync", "register_tasks"]

SYNC_TASK = "contact_sync.sync_contact"
PUMP_TASK = "contact_sync.pump"

log = get_logger("contact_sync.tasks")


def register_tasks(app: ContactSyncCelery) -> None:
    """Register ``contact_sync.sync_contact`` and ``contact_sync.pump`` on ``app``."""
    timings = app.settings.timings

    # The hard limit kills a hung sync before its lease runs out (worker/timings.py).
    # shared=False: another app in the same process (tests build several) keeps its own.
    @app.task(name=SYNC_TASK, bind=True, shared=False, time_limit=timings.task_time_limit_s)
    def sync_contact(self: Task, email: str, lease: str = "") -> str:
        """Sync one email's merged pending change to ActiveCampaign."""
        return run_sync_task(self.app, email, lease)

    @app.task(name=PUMP_TASK, bind=True, shared=False, time_limit=timings.pump_task_time_limit_s)
    def pump(self: Task) -> dict[str, Any]:
        """Drain the stream, merge, and hand out due syncs for one window; then hand over."""
        return run_pump_task(self.app, node=self.request.hostname or socket.gethostname())


def run_sync_task(app: ContactSyncCelery, email: str, lease: str) -> str:
    settings = app.settings
    runtime = get_runtime(settings)
    outcome = run_sync(
        email,
        lease,
        store=runtime.store,
        client=runtime.client,
        limiter=runtime.limiter,
        settings=settings,
        rng=runtime.rng,
        catalog=runtime.catalog,
    )
    getattr(log, outcome.level)(outcome.event, **outcome.fields)
    record_outcome(runtime.redis, runtime.keys, outcome)
    return outcome.event


def run_pump_task(app: ContactSyncCelery, *, node: str) -> dict[str, Any]:
    settings = app.settings
    timings = settings.timings
    runtime = get_runtime(settings)
    lock = PumpLock(runtime.redis, runtime.keys, node=node, ttl_s=timings.pump_lock_ttl_s)
    if not lock.acquire():
        return {"skipped": "another pump is running"}
    consumer = f"{socket.gethostname()}:{os.getpid()}"
    worker_pump = Pump(
        runtime.store,
        settings=settings,
        enqueue_sync=lambda claim: enqueue_sync(app, claim),
        resolve=runtime.resolver.resolve,
        on_invalid=_log_invalid,
        consumer=consumer,
    )
    try:
        report = worker_pump.run(lock)
    finally:
        lock.release()
    if not lock.stop_requested:
        # Hand over at once instead of waiting for the next trigger tick, so due syncs keep
        # flowing. The trigger key tells the triggers that a pump is already on its way. A
        # pump stopped by its worker's shutdown leaves it to the other workers' triggers,
        # which start one within a tick of the lock's release.
        runtime.redis.set(runtime.keys.pump_trigger, consumer, px=int(timings.trigger_ttl_s * 1000))
        enqueue_pump(app)
    summary = report.as_dict()
    if any(value for name, value in summary.items() if name != "cycles"):
        log.info("pump.report", **summary)
    return summary


def enqueue_sync(app: ContactSyncCelery, claim: Claim) -> None:
    """Queue a sync task for a claimed email; args stay ``[email]``, the lease goes in kwargs."""
    shown = claim.email if app.settings.log_pii else mask_email(claim.email)
    app.send_task(
        SYNC_TASK,
        args=[claim.email],
        kwargs={"lease": claim.lease},
        argsrepr=repr([shown]),
        kwargsrepr=repr({"lease": claim.lease}),
    )


def enqueue_pump(app: ContactSyncCelery) -> None:
    # expires: a pump message that waited this long is pointless; a newer trigger replaces it.
    app.send_task(PUMP_TASK, expires=app.settings.timings.pump_expires_s)


def _log_invalid(entry: InvalidEntry) -> None:
    log.warning(
        "event.invalid", entry_id=entry.entry_id, event_id=entry.event_id, errors=entry.errors
    )
