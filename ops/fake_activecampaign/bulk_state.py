"""Bulk import batches: the queue, each batch's progress, and what `import/info` shows.

Batches are worked one at a time, a contact at a time, the oldest first of those past
their `status_false_s` (usually: in submission order). `import/info` shows a batch as
`false` for `status_false_s` after submission (it cannot be claimed before that either),
then "waiting" until the importer claims it, "claimed" until its first contact is
processed, "active" until its last, then "completed". A forced fate (see
bulk_settings.py) ends it "failed" (nothing processed) or "interrupted" (the first K
processed). The documented statuses are these six; when each is shown is the emulator's
choice. A contact whose email matches `fail_emails` is processed into `failure` (its email)
instead of `success` (its contact id, a string); nothing of it is stored.

Bounded: a finished batch keeps only its results, and only the newest
FINISHED_BATCH_LIMIT finished batches are kept; older ones are unknown to `import/info`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fake_activecampaign.bulk_apply import AppliedContact, apply_bulk_contact
from fake_activecampaign.bulk_input import BulkContact
from fake_activecampaign.bulk_settings import BulkSettings
from fake_activecampaign.state import AccountState
from fake_activecampaign.traffic import Traffic

__all__ = ["FINISHED_BATCH_LIMIT", "BulkBatches"]

FINISHED_BATCH_LIMIT = 2_000
_QUEUED, _CLAIMED, _ACTIVE, _COMPLETED = "queued", "claimed", "active", "completed"


@dataclass(slots=True)
class _Batch:
    id: str
    contacts: list[BulkContact]  # emptied when the batch finishes
    total: int
    submitted_at_s: float  # epoch seconds
    visible_mono_s: float  # monotonic; claimable (and "waiting" rather than false) from then
    stop_after: int  # contacts to process: all, or fewer under a forced fate
    status: str = _QUEUED
    processed: int = 0
    end_status: str = _COMPLETED  # "failed" or "interrupted" under a forced fate
    success: list[str] = field(default_factory=list)  # contact ids
    failure: list[str] = field(default_factory=list)  # emails
    claimed_at_s: float | None = None
    finished_at_s: float | None = None

    def shown_status(self, now_mono_s: float) -> str | bool:
        if self.status == _QUEUED:
            return False if now_mono_s < self.visible_mono_s else "waiting"
        return self.status


class BulkBatches:
    """Thread-safe batches; `process` is called by one thread (the importer's)."""

    def __init__(
        self,
        *,
        state: AccountState,
        traffic: Traffic,
        settings: BulkSettings,
        finished_limit: int = FINISHED_BATCH_LIMIT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._traffic = traffic
        self._settings = settings
        self._finished_limit = finished_limit
        self._wall_clock = wall_clock  # epoch seconds, to stamp stored data and batches
        self._lock = threading.Lock()
        self._processing = threading.Lock()  # held by a processing step, and by reset()
        self._reset_unlocked()

    def submit(self, contacts: list[BulkContact], *, now_mono_s: float, now_s: float) -> str:
        """Queue `contacts` as one batch; returns its batchId (a UUID)."""
        batch = _Batch(
            id=str(uuid.uuid4()),
            contacts=list(contacts),
            total=len(contacts),
            submitted_at_s=now_s,
            visible_mono_s=now_mono_s + self._settings.status_false_s(),
            stop_after=len(contacts),
        )
        with self._lock:
            self._batches[batch.id] = batch
            self._unfinished[batch.id] = batch
            self._counters["batches_submitted"] += 1
            self._counters["contacts_queued"] += batch.total
            self._counters["blank_values"] += sum(c.blank_values for c in contacts)
        return batch.id

    def count_refused(self) -> None:
        """A bulk_import request refused for its content (400, nothing queued)."""
        with self._lock:
            self._counters["requests_refused"] += 1

    def info(self, batch_id: str, *, now_mono_s: float) -> dict[str, Any] | None:
        """The `GET /api/3/import/info` body for `batch_id`, or None when unknown."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            status = batch.shown_status(now_mono_s)
            if status is False:
                return {"status": False}
            return {
                "status": status,
                "success": list(batch.success),
                "failure": list(batch.failure),
            }

    def has_work(self, *, now_mono_s: float) -> bool:
        """True when a batch may be worked on now."""
        with self._lock:
            return self._next_due(now_mono_s) is not None

    def process(self, limit: int, *, now_mono_s: float) -> int:
        """Claim the batches due at monotonic `now_mono_s`, process up to `limit` contacts.

        Returns how many contacts were processed.
        Contacts are applied outside the batches' lock, so submissions and `import/info`
        never wait for them; a contact's result is recorded once it is stored.
        """
        processed = 0
        with self._processing:  # reset() waits for the step, so no contact outlives it
            while True:
                now_s = self._wall_clock()
                with self._lock:
                    picked = self._pick(now_mono_s, now_s, may_take=processed < limit)
                if picked is None:
                    return processed
                batch, contact = picked
                applied = None
                if not self._settings.fails_email(contact.email):
                    applied = apply_bulk_contact(self._state, self._traffic, contact, now_s=now_s)
                with self._lock:
                    self._record(batch, contact, applied, self._wall_clock())
                processed += 1

    def summaries(self, *, now_mono_s: float) -> list[dict[str, Any]]:
        """Every known batch, oldest first, with counts (`GET /_emulator/bulk/batches`)."""
        with self._lock:
            return [self._summary(b, now_mono_s) for b in self._batches.values()]

    def detail(self, batch_id: str, *, now_mono_s: float) -> dict[str, Any] | None:
        """One batch's summary plus its `success` ids and `failure` emails, or None."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            return {
                **self._summary(batch, now_mono_s),
                "success": list(batch.success),
                "failure": list(batch.failure),
            }

    def counters(self) -> dict[str, int]:
        with self._lock:
            pending = sum(b.total - b.processed for b in self._unfinished.values())
            return {**self._counters, "contacts_pending": pending}

    def reset(self) -> None:
        with self._processing, self._lock:
            self._reset_unlocked()

    def _claim(self, batch: _Batch, now_s: float) -> None:
        batch.status = _CLAIMED
        batch.claimed_at_s = now_s
        fate = self._settings.take_fate()
        if fate is not None:
            batch.stop_after = fate.stop_after(batch.total)
            batch.end_status = fate.status

    def _next_due(self, now_mono_s: float) -> _Batch | None:
        """The oldest unfinished batch past its `status_false_s`: the one being worked on."""
        for batch in self._unfinished.values():
            if batch.visible_mono_s <= now_mono_s:
                return batch
        return None

    def _pick(
        self, now_mono_s: float, now_s: float, *, may_take: bool
    ) -> tuple[_Batch, BulkContact] | None:
        """The next contact to process, claiming and finishing batches on the way."""
        while (batch := self._next_due(now_mono_s)) is not None:
            if batch.status == _QUEUED:
                self._claim(batch, now_s)
            if batch.processed >= batch.stop_after:
                self._finish(batch, now_s)
                continue
            if not may_take:
                return None
            batch.processed += 1
            return batch, batch.contacts[batch.processed - 1]
        return None

    def _record(
        self, batch: _Batch, contact: BulkContact, applied: AppliedContact | None, now_s: float
    ) -> None:
        batch.status = _ACTIVE
        if applied is None:
            batch.failure.append(contact.email)
            self._counters["contacts_failed"] += 1
        else:
            batch.success.append(applied.contact_id)
            self._counters["contacts_applied"] += 1
            self._counters["unknown_lists"] += applied.unknown_lists
            self._counters["account_moves"] += applied.moved_account
        if batch.processed >= batch.stop_after:
            self._finish(batch, now_s)

    def _finish(self, batch: _Batch, now_s: float) -> None:
        batch.status = batch.end_status
        batch.finished_at_s = now_s
        batch.contacts = []
        self._counters[f"batches_{batch.status}"] += 1
        del self._unfinished[batch.id]
        self._finished.append(batch.id)
        while len(self._finished) > self._finished_limit:
            self._batches.pop(self._finished.popleft(), None)

    def _summary(self, batch: _Batch, now_mono_s: float) -> dict[str, Any]:
        return {
            "batchId": batch.id,
            "status": batch.shown_status(now_mono_s),
            "contacts": batch.total,
            "processed": batch.processed,
            "succeeded": len(batch.success),
            "failed": len(batch.failure),
            "submitted_at": batch.submitted_at_s,
            "claimed_at": batch.claimed_at_s,
            "finished_at": batch.finished_at_s,
        }

    def _reset_unlocked(self) -> None:
        self._batches: OrderedDict[str, _Batch] = OrderedDict()
        self._unfinished: dict[str, _Batch] = {}  # in submission order
        self._finished: deque[str] = deque()
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "batches_submitted",
                "batches_completed",
                "batches_failed",
                "batches_interrupted",
                "contacts_queued",
                "contacts_applied",
                "contacts_failed",
                "requests_refused",
                "unknown_lists",
                "blank_values",
                "account_moves",
            ),
            0,
        )
