"""The pump: stream -> validate -> merge, then due emails -> sync tasks.

Exactly one pump runs at a time across all workers (``PumpLock``), in a thread of one
worker's main process (``worker/pump_thread.py``). It cycles every 100 ms or faster, so due
syncs start within a fraction of a second; a window bounds one ``run`` and its report.
While the rate limiter is paused by a 429, it claims nothing (claim.lua), so a long
Retry-After costs no more Redis work than an idle system.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.errors import ApiError, InvalidContactEvent
from worker.event import ContactEvent
from worker.pump_lock import PumpLock
from worker.resolve import Resolved, Unresolvable
from worker.schema import decode_event, event_id_of
from worker.settings import Settings
from worker.stamp import order_key
from worker.store import Claim, InvalidEntry, MergeStore, RejectedAttributes
from worker.timings import Timings

__all__ = ["Lane", "Pump", "PumpReport", "decode_entry"]


@dataclass(slots=True)
class PumpReport:
    cycles: int = 0
    merged: int = 0
    stale: int = 0
    invalid: int = 0
    reclaimed: int = 0
    expired_leases: int = 0
    claimed: int = 0
    paused_cycles: int = 0  # cycles in which the limiter's pause held claiming back
    rejected: int = 0  # attributes dead-lettered: unknown field or list, invalid value
    deferred: int = 0  # entries left for later: a catalog could not be read
    bulk_claimed: int = 0  # emails leased into bulk import batches
    bulk_steps: int = 0  # batch steps handed to workers (build, submit, poll)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True)
class Lane:
    """One destination, as the pump drives it: its store (its keys), its lease budget, how
    its references resolve, how its syncs are queued, and its backlog mode."""

    name: str
    store: MergeStore
    max_leases: int
    resolve: Callable[[ContactEvent], Resolved]
    enqueue_syncs: Callable[[list[Claim]], Any]
    schedule_bulk: Callable[[PumpReport], Any] | None = None


def decode_entry(entry_id: str, fields: dict[bytes, bytes]) -> ContactEvent | InvalidEntry:
    """Decode one raw stream entry; anything wrong becomes an InvalidEntry with reasons."""
    raw = fields.get(b"event")
    if raw is None:
        names = sorted(name.decode("utf-8", "replace") for name in fields)
        return InvalidEntry(
            entry_id,
            {"_entry": [f"Entry has no 'event' field (fields: {names})."]},
            _lossless(fields),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidEntry(
            entry_id, {"_event": ["Event is not valid UTF-8."]}, raw.decode("utf-8", "replace")
        )
    try:
        return decode_event(text)
    except InvalidContactEvent as exc:
        return InvalidEntry(entry_id, exc.messages, text, event_id_of(text))


def _lossless(fields: dict[bytes, bytes]) -> str:
    return json.dumps(
        {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
    )


class Pump:
    """Drains the events stream into the merge store and leases due emails.

    ``store`` reads the shared events stream and dead-letters what cannot be routed. Each
    destination is a ``Lane``; without ``lanes``, one is built from ``store``,
    ``enqueue_syncs``, ``resolve`` and ``schedule_bulk`` (a single account).
    """

    def __init__(
        self,
        store: MergeStore,
        *,
        settings: Settings,
        enqueue_syncs: Callable[[list[Claim]], Any],
        resolve: Callable[[ContactEvent], Resolved],
        on_invalid: Callable[[InvalidEntry], Any] = lambda entry: None,
        on_rejected: Callable[[RejectedAttributes], Any] = lambda letter: None,
        schedule_bulk: Callable[[PumpReport], Any] | None = None,
        lanes: list[Lane] | None = None,
        consumer: str,
        batch_size: int = 500,
        block_ms: int = 100,
        timings: Timings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.timings = timings or settings.timings
        self.on_invalid = on_invalid
        self.on_rejected = on_rejected
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.lanes = lanes or [
            Lane(
                settings.destination,
                store,
                self.timings.max_leases(settings.rate_limit),
                resolve,
                enqueue_syncs,
                schedule_bulk,
            )
        ]
        self._by_name = {lane.name: lane for lane in self.lanes}
        self._turn = 0
        self._monotonic = monotonic
        self._last_reclaim = -math.inf

    def run(self, lock: PumpLock) -> PumpReport:
        """Cycle for the pump window, until the lock is lost or a stop is asked for."""
        report = PumpReport()
        self.store.ensure_group()
        deadline = self._monotonic() + self.timings.pump_window_s
        while self._monotonic() < deadline:
            self.cycle(report)
            if not lock.keep():
                break
        return report

    def cycle(self, report: PumpReport) -> None:
        """One round: reclaim orphans now and then, ingest a batch, claim what is due."""
        report.cycles += 1
        now = self._monotonic()
        if now - self._last_reclaim >= self.timings.reclaim_every_s:
            self._last_reclaim = now
            orphans = self.store.reclaim_events(
                self.consumer,
                min_idle_ms=int(self.timings.reclaim_idle_s * 1000),
                count=self.batch_size,
            )
            report.reclaimed += len(orphans)
            self._ingest(orphans, report)
            self.store.prune_consumers(
                min_idle_ms=int(self.timings.consumer_idle_limit_s * 1000), keep=self.consumer
            )
        # Blocking at most block_ms bounds how late a due sync can start.
        entries = self.store.read_events(
            self.consumer, count=self.batch_size, block_ms=self.block_ms
        )
        self._ingest(entries, report)
        for lane in self._in_turn():
            self._claim(lane, report)

    def _in_turn(self) -> list[Lane]:
        """Every lane, starting one further each cycle: no destination's syncs always queue
        first. Each lane claims only within its own budget, so none can starve another."""
        self._turn = (self._turn + 1) % len(self.lanes)
        return self.lanes[self._turn :] + self.lanes[: self._turn]

    def _claim(self, lane: Lane, report: PumpReport) -> None:
        # A destination that recently timed out or answered 5xx or 429 gets one lease at a time and
        # no bulk import steps, so it can hold at most one pool process while it is down
        # (worker/isolation.py); its batches wait, their emails leased, until it recovers.
        failing = len(self.lanes) > 1 and lane.store.is_failing()
        max_leases = 1 if failing else lane.max_leases
        claimed = lane.store.claim_due(max_leases=max_leases, lease_s=self.timings.lease_s)
        report.expired_leases += claimed.expired
        report.paused_cycles += claimed.paused_for_s > 0
        if claimed.claims:
            lane.enqueue_syncs(claimed.claims)
        report.claimed += len(claimed.claims)
        if lane.schedule_bulk is not None and not failing:
            lane.schedule_bulk(report)

    def _ingest(self, entries: list[tuple[str, dict[bytes, bytes]]], report: PumpReport) -> None:
        if not entries:
            return
        valid: dict[str, list[tuple[str, ContactEvent]]] = {}
        rejected: dict[str, list[RejectedAttributes]] = {}
        invalid: list[InvalidEntry] = []
        for entry_id, fields in entries:
            decoded = decode_entry(entry_id, fields)
            if isinstance(decoded, InvalidEntry):
                invalid.append(decoded)
                continue
            lane = self._by_name.get(decoded.destination)
            if lane is None:
                invalid.append(_unknown_destination(entry_id, fields, decoded))
                continue
            try:
                resolved = lane.resolve(decoded)
            except (Unresolvable, ApiError):
                # A catalog cannot be read now: leave this entry unacknowledged. It is
                # reclaimed after reclaim_idle_s and resolved then; nothing is
                # dead-lettered for a reference that would have resolved.
                report.deferred += 1
                continue
            valid.setdefault(lane.name, []).append((entry_id, resolved.event))
            rejected.setdefault(lane.name, []).extend(
                _rejected_letters(entry_id, decoded, resolved)
            )
        # Each destination merges into its own keys; what cannot be routed is dead-lettered
        # in the shared stream's store (default's keys). Each call acknowledges its entries.
        for name, events in valid.items():
            self._merge(self._by_name[name].store, events, [], rejected[name], report)
        if invalid:
            self._merge(self.store, [], invalid, [], report)
        for entry in invalid:
            self.on_invalid(entry)
        for letters in rejected.values():
            for letter in letters:
                self.on_rejected(letter)

    def _merge(
        self,
        store: MergeStore,
        valid: list[tuple[str, ContactEvent]],
        invalid: list[InvalidEntry],
        rejected: list[RejectedAttributes],
        report: PumpReport,
    ) -> None:
        result = store.ingest(
            valid, invalid, debounce_s=self.settings.debounce_s, rejected=rejected
        )
        report.merged += result.merged
        report.stale += result.stale
        report.invalid += result.invalid
        report.rejected += sum(len(letter.attributes) for letter in rejected)


def _unknown_destination(
    entry_id: str, fields: dict[bytes, bytes], event: ContactEvent
) -> InvalidEntry:
    raw = fields[b"event"].decode("utf-8")
    return InvalidEntry(
        entry_id,
        {"destination": [f"No destination named {event.destination!r} is configured."]},
        raw,
        event.id,
        reason="unknown_destination",
    )


def _rejected_letters(
    entry_id: str, event: ContactEvent, resolved: Resolved
) -> list[RejectedAttributes]:
    """One dead letter per reason, holding the attributes as the event wrote them."""
    order = order_key(event.occurred_at_us, entry_id)
    by_reason: dict[str, RejectedAttributes] = {}
    for item in resolved.rejected:
        letter = by_reason.setdefault(
            item.reason, RejectedAttributes(event.email, item.reason, [], {}, event.id)
        )
        letter.errors.append(item.message)
        letter.attributes[item.name] = [item.value, order]
    return list(by_reason.values())
