"""The Celery tasks. Thin: decode arguments, call a plain function, log the outcome.

``register_tasks(app)`` adds them to an app built by ``worker.celery_app.create_app``; the
settings come from that app, never from module state.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Task

from worker.bulk import BulkStep
from worker.bulk_store import BulkLimits
from worker.isolation import HOLD_S, Gate
from worker.keys import DEFAULT_DESTINATION, Keys
from worker.logging import get_logger, mask_email
from worker.metrics import record_outcome
from worker.pump import Lane, Pump, PumpReport
from worker.runtime import get_runtime
from worker.settings import Settings
from worker.store import Claim, InvalidEntry, MergeStore, RejectedAttributes
from worker.sync import SyncOutcome
from worker.sync import sync_contact as run_sync

if TYPE_CHECKING:
    from worker.celery_app import ContactSyncCelery

__all__ = [
    "BULK_TASK",
    "PUMP_TASK",
    "SYNC_TASK",
    "build_pump",
    "enqueue_sync",
    "enqueue_syncs",
    "log_pump_report",
    "register_tasks",
]

SYNC_TASK = "contact_sync.sync_contact"
SYNC_MANY_TASK = "contact_sync.sync_contacts"
BULK_TASK = "contact_sync.bulk_step"
PUMP_TASK = "contact_sync.pump"

log = get_logger("contact_sync.tasks")


def register_tasks(app: ContactSyncCelery) -> None:
    """Register ``contact_sync.sync_contact`` (and the retired ``contact_sync.pump``)."""
    timings = app.settings.timings

    # The hard limit kills a hung sync before its lease runs out (worker/timings.py).
    # shared=False: another app in the same process (tests build several) keeps its own.
    @app.task(name=SYNC_TASK, bind=True, shared=False, time_limit=timings.task_time_limit_s)
    def sync_contact(
        self: Task, email: str, lease: str = "", destination: str = DEFAULT_DESTINATION
    ) -> str:
        """Sync one email's merged pending change to one ActiveCampaign account."""
        return run_sync_task(self.app, email, lease, destination)

    @app.task(name=SYNC_MANY_TASK, bind=True, shared=False, time_limit=timings.task_time_limit_s)
    def sync_contacts(
        self: Task, emails: list[str], leases: list[str], destination: str = DEFAULT_DESTINATION
    ) -> dict[str, int]:
        """Sync several claimed emails one after another (high rate limits: fewer tasks)."""
        return run_sync_many(self.app, emails, leases, destination=destination)

    @app.task(name=BULK_TASK, bind=True, shared=False, time_limit=timings.task_time_limit_s)
    def bulk_step(
        self: Task, batch_id: str, token: str, destination: str = DEFAULT_DESTINATION
    ) -> str:
        """Move one bulk import batch on by one step: build, submit or poll."""
        return run_bulk_step(self.app, batch_id, token, destination)

    @app.task(name=PUMP_TASK, shared=False)
    def pump() -> dict[str, Any]:
        """Retired: the pump runs in each worker's main process now (worker/pump_thread.py).

        Kept so that a pump message queued by a worker of an older version, during a rolling
        upgrade, is acknowledged instead of failing as an unregistered task.
        """
        return {"skipped": "the pump runs in the worker process"}


def run_sync_task(
    app: ContactSyncCelery, email: str, lease: str, destination: str = DEFAULT_DESTINATION
) -> str:
    runtime = get_runtime(app.settings, destination)
    settings = runtime.settings
    gate = None
    if len(app.settings.destination_names) > 1:
        gate = Gate(runtime.store, probe_ttl_s=settings.timings.lease_s)
        if not gate.enter():
            return _hold(runtime.store, settings, email, lease, destination)
    outcome = SyncOutcome("contact.sync_crashed", "error")
    try:
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
    finally:
        if gate is not None:
            gate.leave(succeeded=outcome.event == "contact.synced")
    named = {} if destination == DEFAULT_DESTINATION else {"destination": destination}
    getattr(log, outcome.level)(outcome.event, **outcome.fields, **named)
    record_outcome(runtime.redis, runtime.keys, outcome)
    return outcome.event


def _hold(store: MergeStore, settings: Settings, email: str, lease: str, destination: str) -> str:
    """Hand the lease back: another sync is probing this failing destination (isolation.py)."""
    store.finish_sync(
        email,
        lease,
        "retry",
        confirmed_ttl_s=settings.confirmed_ttl_s,
        retry_delay_s=HOLD_S,
        count_attempt=False,
    )
    log.info("contact.sync_held", email=email, destination=destination, reason="failing")
    return "contact.sync_held"


def run_sync_many(
    app: ContactSyncCelery,
    emails: list[str],
    leases: list[str],
    *,
    destination: str = DEFAULT_DESTINATION,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Each email as ``run_sync_task`` would, while a sync's time budget lasts; the emails
    not started by then are handed back, due at once, so their leases never run out."""
    settings = app.settings
    started = monotonic()
    outcomes: Counter[str] = Counter()
    for n, (email, lease) in enumerate(zip(emails, leases, strict=True)):
        if monotonic() - started > settings.timings.limiter_max_wait_s:
            store = get_runtime(settings, destination).store
            rest = list(zip(emails[n:], leases[n:], strict=True))
            store.finish_many(
                rest, "retry", confirmed_ttl_s=settings.confirmed_ttl_s, count_attempt=False
            )
            outcomes["handed_back"] += len(rest)
            break
        outcomes[run_sync_task(app, email, lease, destination)] += 1
    return dict(outcomes)


def run_bulk_step(
    app: ContactSyncCelery, batch_id: str, token: str, destination: str = DEFAULT_DESTINATION
) -> str:
    runtime = get_runtime(app.settings, destination)
    settings = runtime.settings
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
    named = {} if destination == DEFAULT_DESTINATION else {"destination": destination}
    log.info(result.event, **result.fields, **named)
    if settings.bulk_log_contacts:
        for email in result.confirmed:
            log.info("contact.synced", email=email, via="bulk", batch=batch_id, **named)
    return result.event


def schedule_bulk(
    app: ContactSyncCelery, destination: str = DEFAULT_DESTINATION
) -> Callable[[PumpReport], None] | None:
    """The pump's backlog-mode duty for one destination, or None when
    CONTACT_SYNC_BULK_MIN_BACKLOG is 0: lease a batch of the due backlog when it is large,
    and hand out the due batch steps."""
    runtime = get_runtime(app.settings, destination)
    settings = runtime.settings
    if settings.bulk_min_backlog <= 0:
        return None
    limits = BulkLimits(min_backlog=settings.bulk_min_backlog)
    named = {} if destination == DEFAULT_DESTINATION else {"destination": destination}

    def schedule(report: PumpReport) -> None:
        claimed = runtime.bulk.claim_batch(limits, lease_s=settings.bulk_lease_s)
        report.bulk_claimed += len(claimed.members)
        steps = runtime.bulk.due_steps(
            limit=limits.max_batches, step_lease_s=settings.timings.lease_s
        )
        for batch_id, token in steps:
            app.send_task(BULK_TASK, args=[batch_id, token], kwargs=named)
        report.bulk_steps += len(steps)

    return schedule


def build_pump(app: ContactSyncCelery) -> Pump:
    """The pump of this process: one lane per destination; it enqueues a sync task for
    every email it claims."""
    settings = app.settings
    lanes = [_lane(app, name) for name in settings.destination_names]
    # The shared stream, and the dead letters of what names no destination: default's keys.
    root = get_runtime(settings, settings.destination_names[0]).store
    if lanes[0].name != DEFAULT_DESTINATION:
        root = MergeStore(
            root.redis,
            Keys(settings.key_prefix),
            dead_letter_max_count=settings.dead_letter_max_count,
            dead_letter_max_age_s=settings.dead_letter_max_age_s,
        )
    return Pump(
        root,
        settings=settings,
        enqueue_syncs=lanes[0].enqueue_syncs,
        resolve=lanes[0].resolve,
        on_invalid=_log_invalid,
        on_rejected=_log_rejected,
        lanes=lanes,
        consumer=f"{socket.gethostname()}:{os.getpid()}",
    )


def _lane(app: ContactSyncCelery, destination: str) -> Lane:
    runtime = get_runtime(app.settings, destination)
    return Lane(
        destination,
        runtime.store,
        runtime.settings.timings.max_leases(runtime.settings.rate_limit),
        runtime.resolver.resolve,
        lambda claims: enqueue_syncs(app, claims, destination),
        schedule_bulk(app, destination),
    )


def log_pump_report(report: PumpReport) -> None:
    summary = report.as_dict()
    if any(value for name, value in summary.items() if name != "cycles"):
        log.info("pump.report", **summary)


def enqueue_syncs(
    app: ContactSyncCelery, claims: list[Claim], destination: str = DEFAULT_DESTINATION
) -> None:
    """Queue the syncs of a pump cycle's claims: one task per email at ordinary rate limits;
    at high ones (``sync_chunk``), several emails per task, which saves Celery's per-task
    cost (sending, dispatch, acknowledgement, events) where it dominates."""
    settings = app.settings.for_destination(destination)
    chunk = settings.sync_chunk
    named = {} if destination == DEFAULT_DESTINATION else {"destination": destination}
    if chunk <= 1:
        for claim in claims:
            enqueue_sync(app, claim, destination)
        return
    for first in range(0, len(claims), chunk):
        part = claims[first : first + chunk]
        emails = [claim.email for claim in part]
        shown = emails if app.settings.log_pii else [mask_email(email) for email in emails]
        app.send_task(
            SYNC_MANY_TASK,
            args=[emails, [claim.lease for claim in part]],
            kwargs=named,
            argsrepr=repr([shown]),
            kwargsrepr=repr(named),
        )


def enqueue_sync(
    app: ContactSyncCelery, claim: Claim, destination: str = DEFAULT_DESTINATION
) -> None:
    """Queue a sync task for a claimed email; args stay ``[email]``, the lease (and a
    destination other than ``default``) go in kwargs."""
    shown = claim.email if app.settings.log_pii else mask_email(claim.email)
    kwargs = {"lease": claim.lease}
    if destination != DEFAULT_DESTINATION:
        kwargs["destination"] = destination
    app.send_task(
        SYNC_TASK,
        args=[claim.email],
        kwargs=kwargs,
        argsrepr=repr([shown]),
        kwargsrepr=repr(kwargs),
    )


def _log_invalid(entry: InvalidEntry) -> None:
    log.warning(
        "event.invalid",
        entry_id=entry.entry_id,
        event_id=entry.event_id,
        reason=entry.reason,
        errors=entry.errors,
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
