"""The pump: stream -> validate -> merge, then due emails -> sync tasks.

Exactly one pump runs at a time across all workers (``PumpLock``). It loops for a short
window, so due syncs start within a fraction of a second, then hands over to a fresh task.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker.errors import InvalidContactEvent
from worker.schema import ContactEvent, decode_event, event_id_of
from worker.settings import Settings
from worker.store import Claim, InvalidEntry, MergeStore

__all__ = ["Pump", "PumpLock", "PumpReport", "decode_entry"]

# How far ahead the pump leases emails: enough to keep the rate budget busy, few enough that
# a lease does not run out while its task waits for a slot.
CLAIM_HORIZON_S = 2.0
RECLAIM_EVERY_S = 5.0
CONSUMER_IDLE_LIMIT_MS = 3600 * 1000


class PumpLock:
    """A Redis lock with a token: only its holder can renew or release it."""

    _RENEW = """
    -- KEYS[1] lock; ARGV[1] token; ARGV[2] ttl ms. Renews only if we still hold it.
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return 0
    """
    _RELEASE = """
    -- KEYS[1] lock; ARGV[1] token. Deletes only if we still hold it.
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """

    def __init__(self, client: redis.Redis, key: str, *, ttl_s: float) -> None:
        self.redis = client
        self.key = key
        self.ttl_ms = int(ttl_s * 1000)
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(self._RENEW)
        self._release = client.register_script(self._RELEASE)

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])


@dataclass(slots=True)
class PumpReport:
    cycles: int = 0
    merged: int = 0
    stale: int = 0
    invalid: int = 0
    reclaimed: int = 0
    expired_leases: int = 0
    claimed: int = 0
    migrated: int = 0  # contact hashes converted from an older layout

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


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
    """Drains the events stream into the merge store and leases due emails."""

    def __init__(
        self,
        store: MergeStore,
        *,
        settings: Settings,
        enqueue_sync: Callable[[Claim], Any],
        on_invalid: Callable[[InvalidEntry], Any] = lambda entry: None,
        consumer: str,
        batch_size: int = 500,
        block_ms: int = 100,
        reclaim_idle_s: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.enqueue_sync = enqueue_sync
        self.on_invalid = on_invalid
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.reclaim_idle_ms = int(reclaim_idle_s * 1000)
        self.max_leases = max(1, math.ceil(settings.rate_limit * CLAIM_HORIZON_S))
        self._monotonic = monotonic
        self._last_reclaim = -math.inf

    def run(self, lock: PumpLock, *, window_s: float) -> PumpReport:
        """Cycle until ``window_s`` has passed or the lock is lost."""
        report = PumpReport()
        self.store.ensure_group()
        report.migrated = self.store.migrate_layout() or 0
        deadline = self._monotonic() + window_s
        while self._monotonic() < deadline:
            self.cycle(report)
            if not lock.renew():
                break
        return report

    def cycle(self, report: PumpReport) -> None:
        """One round: reclaim orphans now and then, ingest a batch, claim what is due."""
        report.cycles += 1
        now = self._monotonic()
        if now - self._last_reclaim >= RECLAIM_EVERY_S:
            self._last_reclaim = now
            orphans = self.store.reclaim_events(
                self.consumer, min_idle_ms=self.reclaim_idle_ms, count=self.batch_size
            )
            report.reclaimed += len(orphans)
            self._ingest(orphans, report)
            self.store.prune_consumers(min_idle_ms=CONSUMER_IDLE_LIMIT_MS, keep=self.consumer)
        # Blocking at most block_ms bounds how late a due sync can start.
        entries = self.store.read_events(
            self.consumer, count=self.batch_size, block_ms=self.block_ms
        )
        self._ingest(entries, report)
        expired, claims = self.store.claim_due(
            max_leases=self.max_leases, lease_s=self.settings.lease_s
        )
        report.expired_leases += expired
        for claim in claims:
            self.enqueue_sync(claim)
        report.claimed += len(claims)

    def _ingest(self, entries: list[tuple[str, dict[bytes, bytes]]], report: PumpReport) -> None:
        if not entries:
            return
        valid: list[tuple[str, ContactEvent]] = []
        invalid: list[InvalidEntry] = []
        for entry_id, fields in entries:
            decoded = decode_entry(entry_id, fields)
            if isinstance(decoded, InvalidEntry):
                invalid.append(decoded)
            else:
                valid.append((entry_id, decoded))
        result = self.store.ingest(valid, invalid, debounce_s=self.settings.debounce_s)
        report.merged += result.merged
        report.stale += result.stale
        report.invalid += result.invalid
        for entry in invalid:
            self.on_invalid(entry)
