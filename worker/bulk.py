"""Backlog mode: one step of one bulk import batch, as a plain function.

The pump leases the oldest settled due emails as a batch (bulk_claim.lua) and hands out
each batch's due step to a Celery task (bulk_steps.lua). A step reads the batch's state,
does one thing, and records the next state and when the next step is due:

- ``claimed`` -> build: begin each email's sync (pending -> in flight, minus what is
  confirmed); what bulk import cannot express goes back through the sync path (marked
  sync-only); what does not fit in 399,999 bytes waits for the next batch. -> ``built``
- ``built`` -> submit, when bulk import's own limiter (100 requests a minute across all
  workers) has a slot. "Rate limit exceeded." pauses bulk import for a minute; a
  validation failure sends the named contacts to the sync path and the rest again. ->
  ``submitted``
- ``submitted`` -> poll ``import/info`` through the account's 5/s limiter, backing off, and
  renew the emails' leases. ``completed`` confirms every email but its ``failure`` list,
  with the same bookkeeping as a sync (finish.lua), so last-write-wins across syncs holds;
  failures, and whole batches that end ``failed`` or ``interrupted``, go to the sync path.

A step whose worker died is handed out again once its step lease runs out. A build that
died half-way ends its emails' leases at once (they are due again, and nothing in flight
is lost: begin.lua merges it). A submit that died before its answer was recorded cannot
know whether ActiveCampaign queued the batch: its emails stay leased for ``orphan_s`` (so
an older batch does not land after a newer sync), then go to the sync path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.bulk_api import BulkRateLimited, BulkRefused, import_info, submit
from worker.bulk_body import bulk_entry, fit_body
from worker.bulk_store import Batch, BulkStore, Member
from worker.client import ActiveCampaignClient
from worker.errors import ApiError, RateLimited
from worker.ratelimit import RateLimiter
from worker.settings import Settings
from worker.store import MergeStore

__all__ = ["BulkStep", "StepResult"]

MAX_SUBMIT_FAILURES = 5  # then the batch's emails go through the sync path instead
SYNC_ONLY_S = 3600.0
ORPHAN_S = 120.0
POLL_MAX_WAIT_S = 2.0  # a poll waits at most this long for one of the account's request slots


@dataclass(slots=True)
class StepResult:
    """What a step did, as a log event and its fields."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    confirmed: list[str] = field(default_factory=list)  # emails confirmed by this step


@dataclass
class BulkStep:
    bulk: BulkStore
    store: MergeStore
    client: ActiveCampaignClient
    limiter: RateLimiter  # the account's 5/s limiter: polls
    bulk_limiter: RateLimiter  # bulk import's 100/minute
    settings: Settings
    step_lease_s: float
    wall: Callable[[], float] = time.time

    def run(self, batch_id: str, token: str) -> StepResult:
        batch = self.bulk.load(batch_id)
        if batch is None:
            return StepResult("bulk.gone", {"batch": batch_id})
        handler = {
            "claimed": self._build,
            "building": self._rebuild,
            "built": self._submit,
            "submitting": self._orphan,
            "submitted": self._poll,
        }.get(batch.state)
        if handler is None:
            raise ValueError(f"batch {batch_id} in an unknown state {batch.state!r}")
        try:
            return handler(batch, token)
        except _Superseded:
            return StepResult("bulk.superseded", {"batch": batch_id, "state": batch.state})

    # -- build ----------------------------------------------------------------------------

    def _build(self, batch: Batch, token: str) -> StepResult:
        token = self._save(batch, token, next_in_s=self.step_lease_s, state="building")
        settings = self.settings
        begun = self.store.begin_many(
            batch.members,
            lease_s=settings.bulk_lease_s,
            confirmed_ttl_s=settings.confirmed_ttl_s,
            leases_key=self.bulk.keys.bulk_leases,
        )
        entries: list[dict[str, Any]] = []
        members: list[Member] = []
        to_sync: list[Member] = []
        for member, started in zip(batch.members, begun, strict=True):
            if started.status != "send":
                continue  # unchanged (completed by begin.lua) or no longer ours
            entry = bulk_entry(member[0], started.attributes, known=started.known)
            if entry is None:
                to_sync.append(member)
            else:
                entries.append(entry)
                members.append(member)
        fits = fit_body(entries)
        later = members[fits:]
        entries, members = entries[:fits], members[:fits]
        self._to_sync_path(to_sync)
        # Did not fit: pending again, for the next batch; not a failure.
        self.store.finish_many(
            later,
            "retry",
            confirmed_ttl_s=settings.confirmed_ttl_s,
            count_attempt=False,
            leases_key=self.bulk.keys.bulk_leases,
        )
        fields = {"batch": batch.id, "contacts": len(entries), "to_sync": len(to_sync)}
        if not entries:
            self.bulk.done(batch.id, token)
            return StepResult("bulk.empty", fields)
        self._save(
            batch, token, next_in_s=0, state="built", members=members, body=json.dumps(entries)
        )
        return StepResult("bulk.built", {**fields, "later": len(later)})

    def _rebuild(self, batch: Batch, token: str) -> StepResult:
        """A build died half-way: end the leases, so the emails are claimed afresh."""
        token = self._own(batch, token)
        released = self.bulk.extend(batch.members, lease_s=0)
        self.bulk.done(batch.id, token)
        return StepResult("bulk.rebuilt", {"batch": batch.id, "released": released})

    # -- submit ---------------------------------------------------------------------------

    def _submit(self, batch: Batch, token: str) -> StepResult:
        # Waits (the bulk limiter, a rate-limit pause, backoff) may have outlasted the
        # emails' leases: then the sync path may have sent newer values, and this body must
        # not land after them. Renew the leases, and rebuild unless every one still holds.
        token = self._own(batch, token)
        if self.bulk.extend(batch.members, lease_s=self.settings.bulk_lease_s) < len(batch.members):
            released = self.bulk.extend(batch.members, lease_s=0)
            self.bulk.done(batch.id, token)
            return StepResult("bulk.leases_lost", {"batch": batch.id, "released": released})
        wait_s = self.bulk_limiter.try_acquire()
        if wait_s > 0:
            self._save(batch, token, next_in_s=wait_s)
            return StepResult("bulk.waiting", {"batch": batch.id, "wait_s": round(wait_s, 3)})
        entries = json.loads(batch.get("body", "[]"))
        token = self._save(
            batch,
            token,
            next_in_s=self.step_lease_s,
            state="submitting",
            submitting_ms=self._now_ms(),
        )
        fields: dict[str, Any] = {"batch": batch.id, "contacts": len(entries)}
        try:
            ac_batch = submit(self.client, entries)
        except BulkRateLimited:
            pause_s = self.settings.bulk_pause_s
            self.bulk_limiter.pause(pause_s)
            self.store.incr_stat("bulk_rate_limited")
            self._save(batch, token, next_in_s=pause_s, state="built")
            return StepResult("bulk.rate_limited", {**fields, "pause_s": pause_s})
        except BulkRefused as refused:
            return self._refused(batch, token, entries, refused)
        except RateLimited as limited:  # a 429 is not documented here; obey it all the same
            self.bulk_limiter.pause(limited.retry_after_s)
            self._save(batch, token, next_in_s=limited.retry_after_s, state="built")
            return StepResult("bulk.rate_limited", {**fields, "pause_s": limited.retry_after_s})
        except ApiError as error:
            return self._submit_failed(batch, token, error, fields)
        self.store.incr_stat("bulk_batches_submitted")
        self._save(
            batch,
            token,
            next_in_s=self._poll_delay_s(0),
            state="submitted",
            ac_batch=ac_batch,
            submitted_ms=self._now_ms(),
            polls=0,
        )
        return StepResult("bulk.submitted", {**fields, "ac_batch": ac_batch})

    def _refused(
        self, batch: Batch, token: str, entries: list[dict[str, Any]], refused: BulkRefused
    ) -> StepResult:
        named = {index for index in refused.indices if 0 <= index < len(batch.members)}
        to_sync = [member for n, member in enumerate(batch.members) if n in named]
        self._to_sync_path(to_sync)
        keep = [n for n in range(len(batch.members)) if n not in named]
        fields = {"batch": batch.id, "refused": len(to_sync), "reasons": refused.reasons[:5]}
        if not keep:
            self.bulk.done(batch.id, token)
            return StepResult("bulk.refused", fields)
        self._save(
            batch,
            token,
            next_in_s=0,
            state="built",
            members=[batch.members[n] for n in keep],
            body=json.dumps([entries[n] for n in keep]),
        )
        return StepResult("bulk.refused", {**fields, "resent": len(keep)})

    def _submit_failed(
        self, batch: Batch, token: str, error: ApiError, fields: dict[str, Any]
    ) -> StepResult:
        failures = int(batch.number("submit_failures")) + 1
        fields = {**fields, "error": type(error).__name__, "detail": str(error)[:200]}
        if failures >= MAX_SUBMIT_FAILURES:
            token = self._own(batch, token)
            self._to_sync_path(batch.members)
            self.bulk.done(batch.id, token)
            return StepResult("bulk.abandoned", {**fields, "to_sync": len(batch.members)})
        delay_s = min(60.0, 2.0**failures)
        self._save(batch, token, next_in_s=delay_s, state="built", submit_failures=failures)
        return StepResult("bulk.submit_retry", {**fields, "delay_s": delay_s})

    def _orphan(self, batch: Batch, token: str) -> StepResult:
        """A submit died before its answer was recorded: wait, then use the sync path."""
        left_s = (batch.number("submitting_ms") + ORPHAN_S * 1000 - self._now_ms()) / 1000
        if left_s > 0:
            self.bulk.extend(batch.members, lease_s=self.settings.bulk_lease_s)
            self._save(batch, token, next_in_s=left_s)
            return StepResult("bulk.orphan_wait", {"batch": batch.id, "wait_s": round(left_s, 1)})
        token = self._own(batch, token)
        self._to_sync_path(batch.members)
        self.bulk.done(batch.id, token)
        return StepResult("bulk.orphaned", {"batch": batch.id, "to_sync": len(batch.members)})

    # -- poll -----------------------------------------------------------------------------

    def _poll(self, batch: Batch, token: str) -> StepResult:
        polls = int(batch.number("polls")) + 1
        fields: dict[str, Any] = {
            "batch": batch.id,
            "ac_batch": batch.get("ac_batch"),
            "polls": polls,
        }
        # Wait for a slot as a sync does: a poll that only took a free slot when it happened to
        # look lost every one to syncs waiting for the next, while live traffic used the budget.
        slot = self.limiter.acquire(max_wait_s=POLL_MAX_WAIT_S)
        if not slot.ok:
            self._save(batch, token, next_in_s=slot.retry_in_s)
            return StepResult("bulk.poll_waiting", {**fields, "wait_s": round(slot.retry_in_s, 3)})
        self.store.incr_stat("bulk_polls")
        try:
            info = import_info(self.client, batch.get("ac_batch"))
        except RateLimited as limited:
            self.limiter.pause(limited.retry_after_s)
            self.store.incr_stat("rate_limited")
            info = None
        except ApiError as error:
            fields["error"] = type(error).__name__
            info = None
        if info is None or info.status == "pending":
            self.bulk.extend(batch.members, lease_s=self.settings.bulk_lease_s)
            self._save(batch, token, next_in_s=self._poll_delay_s(polls), polls=polls)
            return StepResult("bulk.pending", fields)
        token = self._own(batch, token)
        age_s = (self._now_ms() - batch.number("submitted_ms")) / 1000
        fields["age_s"] = round(age_s, 1)
        if info.status != "completed":
            self._to_sync_path(batch.members)
            self.store.incr_stat(f"bulk_batches_{info.status}")
            self.bulk.done(batch.id, token)
            return StepResult(f"bulk.{info.status}", {**fields, "to_sync": len(batch.members)})
        failed = {email.casefold() for email in info.failure}
        ok = [member for member in batch.members if member[0].casefold() not in failed]
        bad = [member for member in batch.members if member[0].casefold() in failed]
        results = self.store.finish_many(
            ok,
            "success",
            confirmed_ttl_s=self.settings.confirmed_ttl_s,
            counter="synced_bulk",
            leases_key=self.bulk.keys.bulk_leases,
        )
        confirmed = [
            member[0] for member, result in zip(ok, results, strict=True) if result == "success"
        ]
        self._to_sync_path(bad)
        self.store.incr_stat("bulk_batches_completed")
        self.bulk.done(batch.id, token)
        return StepResult(
            "bulk.completed",
            {
                **fields,
                "confirmed": len(confirmed),
                "failed": len(bad),
                "stale": len(ok) - len(confirmed),
            },
            confirmed,
        )

    # -- shared ---------------------------------------------------------------------------

    def _to_sync_path(self, members: list[Member]) -> None:
        """Hand these emails to /contact/sync: their change is due again at once, and they
        stay out of bulk import for an hour."""
        if not members:
            return
        self.bulk.mark_sync_only([email for email, _ in members], for_s=SYNC_ONLY_S)
        self.store.finish_many(
            members,
            "retry",
            confirmed_ttl_s=self.settings.confirmed_ttl_s,
            count_attempt=False,
            leases_key=self.bulk.keys.bulk_leases,
        )
        self.store.incr_stat("bulk_to_sync", len(members))

    def _own(self, batch: Batch, token: str) -> str:
        """Make sure this step still owns the batch before it acts on the emails (raises
        _Superseded otherwise), with a fresh step lease for what it is about to do."""
        return self._save(batch, token, next_in_s=self.step_lease_s)

    def _save(self, batch: Batch, token: str, *, next_in_s: float, **values: Any) -> str:
        new_token = self.bulk.save(batch.id, token, next_in_s=next_in_s, **values)
        if new_token is None:
            raise _Superseded(batch.id)
        return new_token

    @staticmethod
    def _poll_delay_s(polls: int) -> float:
        """1 s after the submit, then 2, 4 and 8 s, at most 15 s between polls."""
        return min(15.0, 2.0 ** max(0, polls - 1)) if polls else 1.0

    def _now_ms(self) -> int:
        return int(self.wall() * 1000)


class _Superseded(Exception):
    """Another step owns the batch now: this one was presumed dead. Stop quietly."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id} was handed to another step")
        self.batch_id = batch_id
