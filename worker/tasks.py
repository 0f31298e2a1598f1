"""The Celery tasks. Thin: decode arguments, call a plain function, log the outcome.

``register_tasks(app)`` adds them to an app built by ``worker.celery_app.create_app``; the
settings come from that app, never from module state.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Task

from worker.bulk import BulkStep
from worker.bulk_store import BulkLimits
from worker.logging import get_logger, mask_email
from worker.metrics import record_outcome
from worker.pump import Pump, PumpReport
from worker.runtime import get_runtime
from worker.store import Claim, InvalidEntry, RejectedAttributes
from worker.sync import sync_contact as run_sync

if TYPE_CHECKING:
    from worker.celery_app import ContactSyncCelery

__all__ = [
    "BULK_TASK",
    "PUMP_TASK",
    "SYNC_TASK",
    "build_pump",
    "enqueue_sync",
    "log_pump_report",
    "register_tasks",
]

SYNC_TASK = "contact_sync.sync_contact"
BULK_TASK = "contact_sync.bulk_step"
PUMP_TASK = "contact_sync.pump"

log = get_logger("contact_sync.tasks")


def register_tasks(app: ContactSyncCelery) -> None:
    """Register ``contact_sync.sync_contact`` (and the retired ``contact_sync.pump``)."""
    timings = app.settings.timings

    # The hard limit kills a hung sync before its lease runs out (worker/timings.py).
    # shared=False: another app in the same process (tests build several) keeps its own.
    @app.task(name=SYNC_TASK, bind=True, shared=False, time_limit=timings.task_time_limit_s)
    def sync_contact(self: Task, email: str, lease: str = "") -> str:
        """Sync one email's merged pending change to ActiveCampaign."""
        return run_sync_task(self.app, email, lease)

    @app.task(name=BULK_TASK, bind=True, shared=False, time_limit=timings.task_time_limit_s)
    def bulk_step(self: Task, batch_id: str, token: str) -> str:
        """Move one bulk import batch on by one step: build, submit or poll."""
        return run_bulk_step(self.app, batch_id, token)

    @app.task(name=PUMP_TASK, shared=False)
    def pump() -> dict[str, Any]:
        """Retired: the pump runs in each worker's main process now (worker/pump_thread.py).

        Kept so that a pump message queued by a worker of an older version, during a rolling
        upgrade, is acknowledged instead of failing as an unregistered task.
        """
        return {"skipped": "the pump runs in the worker process"}


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


def run_bulk_step(app: ContactSyncCelery, batch_id: str, token: str) -> str:
    settings = app.settings
    runtime = get_runtime(settings)
    step = BulkStep(
        runtime.bulk,
        runtime.store,
        runtime.client,
        runtime.limiter,
        runtime.bulk_limiter,
        settings,
        step_lease_s=settings.timings.lease_s,
    )
    result = step.run(batch_id, token)
    log.info(result.event, **result.fields)
    if settings.bulk_log_contacts:
        for email in result.confirmed:
            log.info("contact.synced", email=email, via="bulk", batch=batch_id)
    return result.event


def schedule_bulk(app: ContactSyncCelery) -> Callable[[PumpReport], None] | None:
    """The pump's backlog-mode duty, or None when CONTACT_SYNC_BULK_MIN_BACKLOG is 0: lease
    a batch of the due backlog when it is large, and hand out the due batch steps."""
    settings = app.settings
    if settings.bulk_min_backlog <= 0:
        return None
    limits = BulkLimits(min_backlog=settings.bulk_min_backlog)
    runtime = get_runtime(settings)

    def schedule(report: PumpReport) -> None:
        claimed = runtime.bulk.claim_batch(limits, lease_s=settings.bulk_lease_s)
        report.bulk_claimed += len(claimed.members)
        steps = runtime.bulk.due_steps(
            limit=limits.max_batches, step_lease_s=settings.timings.lease_s
        )
        for batch_id, token in steps:
            app.send_task(BULK_TASK, args=[batch_id, token])
        report.bulk_steps += len(steps)

    return schedule


def build_pump(app: ContactSyncCelery) -> Pump:
    """The pump of this process: it enqueues a sync task for every email it claims."""
    runtime = get_runtime(app.settings)
    return Pump(
        runtime.store,
        settings=app.settings,
        enqueue_sync=lambda claim: enqueue_sync(app, claim),
        resolve=runtime.resolver.resolve,
        on_invalid=_log_invalid,
        on_rejected=_log_rejected,
        schedule_bulk=schedule_bulk(app),
        consumer=f"{socket.gethostname()}:{os.getpid()}",
    )


def log_pump_report(report: PumpReport) -> None:
    summary = report.as_dict()
    if any(value for name, value in summary.items() if name != "cycles"):
        log.info("pump.report", **summary)


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


def _log_invalid(entry: InvalidEntry) -> None:
    log.warning(
        "event.invalid", entry_id=entry.entry_id, event_id=entry.event_id, errors=entry.errors
    )


def _log_rejected(letter: RejectedAttributes) -> None:
    """A reference the account lacks (or a value not among a field's options): the rest of
    the change merges; these attributes are dead-lettered, and this line says which."""
    log.warning(
        "attributes.rejected",
        email=letter.email,
        reason=letter.reason,
        references=sorted(letter.attributes),
        errors=letter.errors,
        event_id=letter.event_id,
    )
