"""One sync attempt for one email, as a plain function: testable without Celery."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from worker.backoff import plan_retry
from worker.client import ActiveCampaignClient
from worker.errors import ApiError, ApiStatusError, RateLimited
from worker.ratelimit import RateLimiter
from worker.schema import attributes_to_contact
from worker.settings import Settings
from worker.store import MergeStore

__all__ = ["SyncOutcome", "sync_contact"]

# The {prefix}:stats counter of each action; worker.metrics exposes them as syncs_total.
_SYNCED_COUNTERS = {"updated": "synced_updated", "unknown": "synced_unknown"}


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What happened, as the log event to write and its fields."""

    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)


def sync_contact(
    email: str,
    lease: str,
    *,
    store: MergeStore,
    client: ActiveCampaignClient,
    limiter: RateLimiter,
    settings: Settings,
    rng: random.Random,
) -> SyncOutcome:
    """Send the merged pending change of ``email`` if it differs from what is confirmed."""
    ttl_s = settings.confirmed_ttl_s
    timings = settings.timings
    begun = store.begin_sync(email, lease, lease_s=timings.lease_s, confirmed_ttl_s=ttl_s)
    if begun.status == "stale":
        return SyncOutcome(
            "contact.sync_skipped", "debug", {"email": email, "reason": "lease_lost"}
        )
    if begun.status == "unchanged":
        return SyncOutcome(
            "contact.unchanged", fields={"email": email, "merged_events": begun.merged_events}
        )

    slot = limiter.acquire(max_wait_s=timings.limiter_max_wait_s)
    if not slot.ok:
        # The budget is spoken for, or a 429's pause outlasts the wait: hand the change back,
        # due when a slot may be free, without counting a failed attempt. Due at once would
        # have the pump lease it again every cycle for the whole pause.
        store.finish_sync(
            email,
            lease,
            "retry",
            confirmed_ttl_s=ttl_s,
            retry_delay_s=slot.retry_in_s,
            count_attempt=False,
        )
        return SyncOutcome(
            "contact.sync_deferred",
            "debug",
            {
                "email": email,
                "waited_s": round(slot.waited_s, 3),
                "retry_in_s": round(slot.retry_in_s, 3),
            },
        )

    attributes = {name: value for name, value in begun.attributes.items() if name != "email"}
    common = {
        "email": email,
        "attempt": begun.attempt,
        "merged_events": begun.merged_events,
        "fields_sent": sorted(attributes),
        "limiter_wait_ms": round(slot.waited_s * 1000, 1),
    }
    started = time.monotonic()
    try:
        result = client.sync_contact(attributes_to_contact(email, attributes.items()))
    except ApiError as error:
        return _failed(
            email,
            lease,
            error,
            begun.now_ms - begun.first_attempt_ms,
            started,
            common,
            store,
            limiter,
            settings,
            rng,
        )

    # The answer cannot say whether ActiveCampaign created the contact (cdate == udate is
    # undocumented, and its own examples contradict it), and a contact new to us may have
    # come from elsewhere. Only a contact we confirmed before is surely an update.
    action = "updated" if begun.known else "unknown"
    recorded = store.finish_sync(
        email, lease, "success", confirmed_ttl_s=ttl_s, counter=_SYNCED_COUNTERS[action]
    )
    fields = {
        **common,
        "contact_id": result.contact_id,
        "action": action,
        "status": result.status,
        "latency_ms": round(result.latency_ms, 1),
    }
    if recorded == "stale":
        # Another claim owns the email now; it will send the same values again (harmless).
        return SyncOutcome(
            "contact.synced", "warning", {**fields, "note": "lease expired during the request"}
        )
    return SyncOutcome("contact.synced", fields=fields)


def _failed(
    email: str,
    lease: str,
    error: ApiError,
    age_ms: int,
    started: float,
    common: dict[str, Any],
    store: MergeStore,
    limiter: RateLimiter,
    settings: Settings,
    rng: random.Random,
) -> SyncOutcome:
    elapsed_s = time.monotonic() - started
    if isinstance(error, RateLimited):
        limiter.pause(error.retry_after_s)
        store.incr_stat("rate_limited")
    plan = plan_retry(
        error,
        attempt=common["attempt"],
        age_s=age_ms / 1000.0 + elapsed_s,
        max_retry_age_s=settings.max_retry_age_s,
        base_s=settings.backoff_base_s,
        cap_s=settings.backoff_cap_s,
        config_error_base_s=settings.config_error_backoff_s,
        rng=rng,
    )
    details = {
        **common,
        "error": type(error).__name__,
        "status": error.status
        if isinstance(error, ApiStatusError)
        else (429 if isinstance(error, RateLimited) else None),
        "errors": error.errors if isinstance(error, ApiStatusError) else [],
        "latency_ms": round(elapsed_s * 1000, 1),
    }
    ttl_s = settings.confirmed_ttl_s
    if plan.dead_reason is not None:
        store.finish_sync(
            email,
            lease,
            "dead",
            confirmed_ttl_s=ttl_s,
            reason=plan.dead_reason,
            status=details["status"],
            errors=details["errors"],
        )
        return SyncOutcome(
            "contact.dead_lettered", "error", {**details, "reason": plan.dead_reason}
        )
    store.finish_sync(
        email, lease, "retry", confirmed_ttl_s=ttl_s, retry_delay_s=plan.delay_s, counter="retries"
    )
    level = "error" if plan.config_error else "warning"
    if isinstance(error, RateLimited):
        details["retry_after_s"] = error.retry_after_s
    return SyncOutcome("contact.sync_retry", level, {**details, "delay_s": round(plan.delay_s, 3)})
