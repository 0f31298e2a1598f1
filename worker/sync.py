"""One sync attempt for one email, as a plain function: testable without Celery.

The contact's own attributes (name, phone, custom fields, and the email of a contact new to
us) go in one ``POST /contact/sync``; its tags, lists and account follow, each confirmed on
its own (``worker/footprint.py``). A change that touches only those, for a contact whose id
we know, makes no ``/contact/sync`` at all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.backoff import plan_retry
from worker.catalog import Catalog
from worker.client import ActiveCampaignClient
from worker.errors import ApiError, ApiServerError, ApiStatusError, ApiTransportError, RateLimited
from worker.footprint import Footprint, Progress, is_footprint
from worker.footprint_api import FootprintApi
from worker.isolation import FAILING_PROBE_S
from worker.ratelimit import RateLimiter
from worker.schema import sync_contact_body
from worker.settings import Settings
from worker.store import Begun, MergeStore

__all__ = ["SyncOutcome", "sync_contact"]

# The {prefix}:stats counter of each action; worker.metrics exposes them as syncs_total.
_SYNCED_COUNTERS = {"updated": "synced_updated", "unknown": "synced_unknown"}


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What happened, as the log event to write and its fields."""

    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)


class _NoSlot(Exception):
    """No rate-limiter slot in the time this attempt has left: hand the rest back."""

    def __init__(self, retry_in_s: float) -> None:
        self.retry_in_s = retry_in_s


@dataclass
class _Attempt:
    email: str
    lease: str
    begun: Begun
    store: MergeStore
    limiter: RateLimiter
    settings: Settings
    rng: random.Random
    started: float
    progress: Progress
    common: dict[str, Any]
    # The contact's id is kept only for contacts with tags, lists or an account: it saves
    # their next such change a /contact/sync, and costs every other contact nothing.
    keep_contact_id: bool = False

    def finish(self, outcome: Any, **options: Any) -> str:
        return self.store.finish_sync(
            self.email,
            self.lease,
            outcome,
            confirmed_ttl_s=self.settings.confirmed_ttl_s,
            contact_id=self.progress.contact_id if self.keep_contact_id else None,
            confirmed=self.progress.confirmed,
            **options,
        )


def sync_contact(
    email: str,
    lease: str,
    *,
    store: MergeStore,
    client: ActiveCampaignClient,
    limiter: RateLimiter,
    settings: Settings,
    rng: random.Random,
    catalog: Catalog | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> SyncOutcome:
    """Send the merged pending change of ``email`` if it differs from what is confirmed.

    ``catalog`` resolves tag and account names (needed only when the change has tags, lists
    or an account).
    """
    timings = settings.timings
    begun = store.begin_sync(
        email, lease, lease_s=timings.lease_s, confirmed_ttl_s=settings.confirmed_ttl_s
    )
    if begun.status == "stale":
        return SyncOutcome(
            "contact.sync_skipped", "debug", {"email": email, "reason": "lease_lost"}
        )
    if begun.status == "unchanged":
        return SyncOutcome(
            "contact.unchanged", fields={"email": email, "merged_events": begun.merged_events}
        )
    started = monotonic()
    slot = limiter.acquire(max_wait_s=timings.limiter_max_wait_s)
    attempt = _Attempt(
        email=email,
        lease=lease,
        begun=begun,
        store=store,
        limiter=limiter,
        settings=settings,
        rng=rng,
        started=monotonic(),
        progress=Progress(contact_id=begun.contact_id),
        common={
            "email": email,
            "attempt": begun.attempt,
            "merged_events": begun.merged_events,
            "fields_sent": sorted(name for name in begun.attributes if name != "email"),
            "limiter_wait_ms": round(slot.waited_s * 1000, 1),
        },
    )
    if not slot.ok:
        return _deferred(attempt, slot.retry_in_s, waited_s=slot.waited_s)

    # Later requests of this attempt must end before its time limit (worker/timings.py).
    deadline = (
        started + timings.task_time_limit_s - timings.bookkeeping_s - 2 * timings.http_timeout_s
    )

    def take_slot(kind: str) -> None:
        remaining_s = min(timings.limiter_max_wait_s, deadline - monotonic())
        got = limiter.acquire(max_wait_s=max(0.0, remaining_s))
        if not got.ok:
            raise _NoSlot(got.retry_in_s)

    core = {name: value for name, value in begun.attributes.items() if not is_footprint(name)}
    extra = {name: value for name, value in begun.attributes.items() if is_footprint(name)}
    attempt.keep_contact_id = bool(extra) or begun.contact_id is not None
    result = None
    try:
        if core or attempt.progress.contact_id is None:
            # The slot taken above; for a footprint-only change of an unknown contact, a
            # sync with the email alone finds or creates it and tells us its id.
            body = {name: value for name, value in core.items() if name != "email"}
            result = client.sync_contact(sync_contact_body(email, body.items()))
            attempt.progress.requests["contact_sync"] += 1
            attempt.progress.confirmed += list(core)
            attempt.progress.contact_id = result.contact_id or attempt.progress.contact_id
            first_slot_used = True
        else:
            first_slot_used = False
        if extra:
            if catalog is None:
                raise RuntimeError("a change with tags, lists or an account needs a catalog")
            footprint = Footprint(
                FootprintApi(client),
                catalog,
                take_slot=_first_slot_free(take_slot, used=first_slot_used),
            )
            footprint.send(extra, attempt.progress)
    except _NoSlot as no_slot:
        return _deferred(attempt, no_slot.retry_in_s, waited_s=monotonic() - attempt.started)
    except ApiError as error:
        return _failed(attempt, error, monotonic() - attempt.started)
    return _succeeded(attempt, result)


def _first_slot_free(take_slot: Callable[[str], None], *, used: bool) -> Callable[[str], None]:
    """``take_slot``, except that the first call is free when the attempt's first slot is
    still unused (a change with no /contact/sync)."""
    free = [not used]

    def take(kind: str) -> None:
        if free[0]:
            free[0] = False
            return
        take_slot(kind)

    return take


def _deferred(attempt: _Attempt, retry_in_s: float, *, waited_s: float) -> SyncOutcome:
    # The budget is spoken for, or a 429's pause outlasts the wait: hand the rest back, due
    # when a slot may be free, without counting a failed attempt. Due at once would have
    # the pump lease it again every cycle for the whole pause.
    attempt.finish("retry", retry_delay_s=retry_in_s, count_attempt=False)
    return SyncOutcome(
        "contact.sync_deferred",
        "debug",
        {
            "email": attempt.email,
            "waited_s": round(waited_s, 3),
            "retry_in_s": round(retry_in_s, 3),
            "confirmed": sorted(attempt.progress.confirmed),
            **_progress_fields(attempt.progress),
        },
    )


def _succeeded(attempt: _Attempt, result: Any) -> SyncOutcome:
    # The answer cannot say whether ActiveCampaign created the contact (cdate == udate is
    # undocumented, and its own examples contradict it), and a contact new to us may have
    # come from elsewhere. Only a contact we confirmed before is surely an update.
    action = "updated" if attempt.begun.known else "unknown"
    recorded = attempt.finish("success", counter=_SYNCED_COUNTERS[action])
    fields = {
        **attempt.common,
        "contact_id": attempt.progress.contact_id,
        "action": action,
        **_progress_fields(attempt.progress),
    }
    if result is not None:
        fields["status"] = result.status
        fields["latency_ms"] = round(result.latency_ms, 1)
    if recorded == "stale":
        # Another claim owns the email now; it will send the same values again (harmless).
        return SyncOutcome(
            "contact.synced", "warning", {**fields, "note": "lease expired during the request"}
        )
    return SyncOutcome("contact.synced", fields=fields)


def _progress_fields(progress: Progress) -> dict[str, Any]:
    """Requests by kind, and each tag's, list's and account's outcome, for the log line."""
    fields: dict[str, Any] = {"requests": dict(progress.requests)}
    if progress.steps:
        fields["steps"] = dict(progress.steps)
    return fields


def _failed(attempt: _Attempt, error: ApiError, elapsed_s: float) -> SyncOutcome:
    settings = attempt.settings
    if isinstance(error, RateLimited):
        attempt.limiter.pause(error.retry_after_s)
        attempt.store.incr_stat("rate_limited")
    if isinstance(error, RateLimited | ApiTransportError | ApiServerError):
        # Isolation: this destination gets one email at a time for a while, so an account
        # that hangs, or whose queued syncs would all wait out its 429 pause, cannot hold
        # every pool process (worker/isolation.py).
        attempt.store.mark_failing(FAILING_PROBE_S)
    age_ms = attempt.begun.now_ms - attempt.begun.first_attempt_ms
    plan = plan_retry(
        error,
        attempt=attempt.common["attempt"],
        age_s=age_ms / 1000.0 + elapsed_s,
        max_retry_age_s=settings.max_retry_age_s,
        base_s=settings.backoff_base_s,
        cap_s=settings.backoff_cap_s,
        config_error_base_s=settings.config_error_backoff_s,
        rng=attempt.rng,
    )
    details = {
        **attempt.common,
        "error": type(error).__name__,
        "status": error.status
        if isinstance(error, ApiStatusError)
        else (429 if isinstance(error, RateLimited) else None),
        "errors": error.errors if isinstance(error, ApiStatusError) else [],
        "latency_ms": round(elapsed_s * 1000, 1),
    }
    if attempt.progress.confirmed:
        details["confirmed"] = sorted(attempt.progress.confirmed)
    details.update(_progress_fields(attempt.progress))
    if plan.dead_reason is not None:
        attempt.finish(
            "dead", reason=plan.dead_reason, status=details["status"], errors=details["errors"]
        )
        return SyncOutcome(
            "contact.dead_lettered", "error", {**details, "reason": plan.dead_reason}
        )
    attempt.finish("retry", retry_delay_s=plan.delay_s, counter="retries")
    level = "error" if plan.config_error else "warning"
    if isinstance(error, RateLimited):
        details["retry_after_s"] = error.retry_after_s
    return SyncOutcome("contact.sync_retry", level, {**details, "delay_s": round(plan.delay_s, 3)})
