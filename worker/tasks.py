"""The Celery tasks. Thin: decode arguments, call a plain function, log the outcome."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Task

from worker.celery_app import app, settings
from worker.logging import get_logger, mask_email
from worker.metrics import record_outcome
from worker.pump import Pump, PumpLock
from worker.runtime import get_runtime
from worker.store import Claim, InvalidEntry
from worker.sync import sync_contact as run_sync

__all__ = ["enqueue_sync", "pump", "sync_contact"]

log = get_logger("contact_sync.tasks")

PUMP_WINDOW_S = 5.0
PUMP_LOCK_TTL_S = 10.0


@app.task(name="contact_sync.sync_contact", bind=True, ignore_result=True)
def sync_contact(self: Task, email: str, lease: str = "") -> str:
    """Sync one email's merged pending change to ActiveCampaign."""
    runtime = get_runtime(settings)
    outcome = run_sync(
        email,
        lease,
        store=runtime.store,
        client=runtime.client,
        limiter=runtime.limiter,
        settings=settings,
        rng=runtime.rng,
    )
    getattr(log, outcome.level)(outcome.event, **outcome.fields)
    record_outcome(runtime.redis, runtime.keys, outcome)
    return outcome.event


def enqueue_sync(claim: Claim) -> None:
    """Queue a sync task for a claimed email; args stay ``[email]``, the lease goes in kwargs."""
    shown = claim.email if settings.log_pii else mask_email(claim.email)
    sync_contact.apply_async(
        args=[claim.email],
        kwargs={"lease": claim.lease},
        argsrepr=repr([shown]),
        kwargsrepr=repr({"lease": claim.lease}),
    )


def _log_invalid(entry: InvalidEntry) -> None:
    log.warning(
        "event.invalid", entry_id=entry.entry_id, event_id=entry.event_id, errors=entry.errors
    )


@app.task(name="contact_sync.pump", bind=True, ignore_result=True)
def pump(self: Task) -> dict[str, Any]:
    """Drain the stream, merge, and hand out due syncs, for a few seconds; then hand over."""
    runtime = get_runtime(settings)
    lock = PumpLock(runtime.redis, runtime.keys.pump_lock, ttl_s=PUMP_LOCK_TTL_S)
    if not lock.acquire():
        return {"skipped": "another pump is running"}
    consumer = f"{socket.gethostname()}:{os.getpid()}"
    worker_pump = Pump(
        runtime.store,
        settings=settings,
        enqueue_sync=enqueue_sync,
        on_invalid=_log_invalid,
        consumer=consumer,
    )
    try:
        report = worker_pump.run(lock, window_s=PUMP_WINDOW_S)
    finally:
        lock.release()
    # Hand over at once instead of waiting for the next trigger tick, so due syncs keep
    # flowing. The trigger key tells the trigger threads that a pump is already on its way.
    runtime.redis.set(runtime.keys.pump_trigger, consumer, px=int(PUMP_LOCK_TTL_S * 1000))
    pump_task_apply()
    summary = report.as_dict()
    if (
        report.merged
        or report.invalid
        or report.claimed
        or report.reclaimed
        or report.expired_leases
        or report.migrated
    ):
        log.info("pump.report", **summary)
    return summary


def pump_task_apply() -> None:
    # expires: a pump message that waited this long is pointless; a newer trigger replaces it.
    pump.apply_async(expires=PUMP_LOCK_TTL_S * 3)
