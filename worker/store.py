"""The merge store: Redis state for pending, in-flight and confirmed contact values.

Every state change is one Lua script (see ``worker/lua/``), so it is atomic across any
number of workers. Times in Redis are the Redis server's clock, never a worker's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from worker._lua import load_script
from worker.event import ContactEvent
from worker.keys import CONSUMER_GROUP, Keys
from worker.redis_client import text as _text
from worker.stamp import stamp

__all__ = [
    "Begun",
    "Claim",
    "Claimed",
    "IngestResult",
    "InvalidEntry",
    "MergeStore",
    "RejectedAttributes",
]

Outcome = Literal["success", "retry", "dead"]


@dataclass(frozen=True, slots=True)
class InvalidEntry:
    entry_id: str
    errors: Any
    raw: str
    event_id: str | None = None
    reason: str = "invalid_event"  # or "unknown_destination"


@dataclass(frozen=True, slots=True)
class RejectedAttributes:
    """Attributes of a merged event that cannot be merged, as one dead letter.

    ``attributes`` maps each name, as the event wrote it, to ``[value, order key]``.
    """

    email: str
    reason: str
    errors: list[str]
    attributes: dict[str, list[str]]
    event_id: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    merged: int = 0
    stale: int = 0
    invalid: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    email: str
    lease: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one claim_due call did: leases that ran out, the limiter's pause, new claims."""

    expired: int = 0
    paused_for_s: float = 0.0  # > 0: the limiter is paused, so nothing was claimed
    claims: list[Claim] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Begun:
    """What begin_sync found: ``status`` is 'send', 'unchanged' or 'stale'."""

    status: str
    merged_events: int = 0
    attempt: int = 0
    known: bool = False
    first_attempt_ms: int = 0
    now_ms: int = 0
    contact_id: str | None = None  # ActiveCampaign's id, once a sync or lookup told us
    attributes: dict[str, str] = field(default_factory=dict)


def _begun(reply: list[Any]) -> Begun:
    status = _text(reply[0])
    if status == "stale":
        return Begun("stale")
    if status == "unchanged":
        return Begun("unchanged", merged_events=int(reply[1]))
    flat = [_text(item) for item in reply[7:]]
    return Begun(
        "send",
        merged_events=int(reply[1]),
        attempt=int(reply[2]),
        known=_text(reply[3]) == "1",
        first_attempt_ms=int(reply[4]),
        now_ms=int(reply[5]),
        contact_id=_text(reply[6]) or None,
        attributes={flat[n]: flat[n + 1] for n in range(0, len(flat), 2)},
    )


class MergeStore:
    """All of contact-sync's Redis state behind a handful of atomic operations."""

    # Raw entries kept in a dead letter are cut here; 64 KiB is the event size limit anyway.
    MAX_RAW_CHARS = 70_000

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        dead_letter_max_count: int = 100_000,
        dead_letter_max_age_s: float = 30 * 86400.0,
    ) -> None:
        self.redis: Any = client  # redis-py types replies as Awaitable | Any
        self.keys = keys
        # The dead-letter stream's bounds, applied by the scripts each time they add to it.
        self._dead_bounds = [int(dead_letter_max_count), int(dead_letter_max_age_s * 1000)]
        self._ingest = load_script(client, "ingest")
        self._claim = load_script(client, "claim")
        self._begin = load_script(client, "begin")
        self._finish = load_script(client, "finish")

    # -- the events stream -------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing. Idempotent.

        The group starts at id 0, so events written before any worker ever ran are read too.
        """
        try:
            self.redis.xgroup_create(self.keys.events, CONSUMER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_events(
        self, consumer: str, *, count: int, block_ms: int | None
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """New entries for this consumer (XREADGROUP '>'), recreating a lost group."""
        try:
            reply = self.redis.xreadgroup(
                CONSUMER_GROUP, consumer, {self.keys.events: ">"}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The group vanishes when Redis lost its data (no persistence); start it again.
            self.ensure_group()
            return []
        if not reply:
            return []
        return [(_text(entry_id), fields) for entry_id, fields in reply[0][1]]

    def reclaim_events(
        self, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Entries that a dead consumer read but never acknowledged (XAUTOCLAIM)."""
        try:
            reply = self.redis.xautoclaim(
                self.keys.events, CONSUMER_GROUP, consumer, min_idle_time=min_idle_ms, count=count
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        return [(_text(entry_id), fields) for entry_id, fields in reply[1] if fields is not None]

    def prune_consumers(self, *, min_idle_ms: int, keep: str) -> int:
        """Forget consumers that hold no entries and were idle for ``min_idle_ms``.

        Each pool process reads under its own consumer name, so names pile up across
        restarts; one with no pending entries has nothing left to recover.
        """
        try:
            consumers = self.redis.xinfo_consumers(self.keys.events, CONSUMER_GROUP)
        except redis.ResponseError:
            return 0
        removed = 0
        for consumer in consumers:
            name = _text(consumer["name"])
            if name != keep and consumer["pending"] == 0 and consumer["idle"] >= min_idle_ms:
                self.redis.xgroup_delconsumer(self.keys.events, CONSUMER_GROUP, name)
                removed += 1
        return removed

    def ingest(
        self,
        events: Sequence[tuple[str, ContactEvent]],
        invalid: Sequence[InvalidEntry],
        *,
        debounce_s: float,
        rejected: Sequence[RejectedAttributes] = (),
    ) -> IngestResult:
        """Merge validated events and dead-letter invalid entries, acking each one.

        ``rejected`` dead-letters attributes of the merged events that could not be
        resolved, in the same atomic step.
        """
        if not events and not invalid:
            return IngestResult()
        contact_keys: dict[str, int] = {}
        base = [
            self.keys.events,
            self.keys.due,
            self.keys.leases,
            self.keys.dead,
            self.keys.stats,
            self.keys.bulk_leases,
        ]
        args: list[Any] = [CONSUMER_GROUP, int(debounce_s * 1000), len(events)]
        for entry_id, event in events:
            index = contact_keys.setdefault(event.email, len(base) + len(contact_keys) + 1)
            args += [
                entry_id,
                index,
                event.email,
                stamp(event.occurred_at_us, entry_id),
                len(event.attributes),
            ]
            for name, value in event.attributes.items():
                args += [name, value]
        args.append(len(invalid))
        for entry in invalid:
            args += [
                entry.entry_id,
                entry.reason,
                json.dumps(entry.errors, ensure_ascii=False, default=str),
                entry.raw[: self.MAX_RAW_CHARS],
                entry.event_id or "",
            ]
        args.append(len(rejected))
        for letter in rejected:
            args += [
                letter.email,
                letter.reason,
                json.dumps(letter.errors, ensure_ascii=False),
                json.dumps(letter.attributes, ensure_ascii=False),
                letter.event_id,
            ]
        args += self._dead_bounds
        keys = base + [self.keys.contact(email) for email in contact_keys]
        merged, stale, bad = self._ingest(keys=keys, args=args)
        return IngestResult(merged=int(merged), stale=int(stale), invalid=int(bad))

    # -- scheduling ----------------------------------------------------------------------

    def claim_due(
        self,
        *,
        max_leases: int,
        lease_s: float,
        settled_s: float = 1.0,
        backlog_leases: int = 2,
    ) -> Claimed:
        """Lease due emails while fewer than ``max_leases`` exist; none while paused. In
        backlog mode, live changes first, and at most ``backlog_leases`` on emails due for
        ``settled_s`` or more (bulk import drains those)."""
        reply = self._claim(
            keys=[
                self.keys.due,
                self.keys.leases,
                self.keys.lease_tokens,
                self.keys.claims,
                self.keys.rate_pause,
                self.keys.bulk_mode,
                self.keys.bulk_leases,
            ],
            args=[max_leases, int(lease_s * 1000), int(settled_s * 1000), backlog_leases],
        )
        flat = [_text(item) for item in reply[2:]]
        return Claimed(
            expired=int(reply[0]),
            paused_for_s=int(reply[1]) / 1000.0,
            claims=[Claim(flat[n], flat[n + 1]) for n in range(0, len(flat), 2)],
        )

    def begin_sync(
        self, email: str, lease: str, *, lease_s: float, confirmed_ttl_s: float
    ) -> Begun:
        """Move pending values in flight and drop what ActiveCampaign already confirmed."""
        return self.begin_many([(email, lease)], lease_s=lease_s, confirmed_ttl_s=confirmed_ttl_s)[
            0
        ]

    def begin_many(
        self,
        claims: Sequence[tuple[str, str]],
        *,
        lease_s: float,
        confirmed_ttl_s: float,
        leases_key: str | None = None,
    ) -> list[Begun]:
        """``begin_sync`` for each (email, lease) pair, in one round trip. ``leases_key``:
        the ZSET holding the leases (a bulk batch's are in ``bulk_leases``)."""
        pipe = self.redis.pipeline(transaction=False) if len(claims) > 1 else None
        replies = []
        for email, lease in claims:
            reply = self._begin(
                keys=[
                    self.keys.contact(email),
                    leases_key or self.keys.leases,
                    self.keys.due,
                    self.keys.stats,
                    self.keys.lease_tokens,
                ],
                args=[email, lease, int(lease_s * 1000), int(confirmed_ttl_s * 1000)],
                client=pipe,
            )
            replies.append(reply)
        return [_begun(reply) for reply in (pipe.execute() if pipe is not None else replies)]

    def finish_sync(self, email: str, lease: str, outcome: Outcome, **options: Any) -> str:
        """Complete an attempt. Returns the outcome, or 'stale' if the lease was lost.

        The options are ``finish_many``'s. ``confirmed`` names attributes ActiveCampaign
        accepted before a partial failure: they are confirmed, and ``outcome`` applies to
        the rest. ``contact_id`` is recorded when the attempt learned it.
        """
        return self.finish_many([(email, lease)], outcome, **options)[0]

    def finish_many(
        self,
        claims: Sequence[tuple[str, str]],
        outcome: Outcome,
        *,
        confirmed_ttl_s: float,
        retry_delay_s: float = 0.0,
        count_attempt: bool = True,
        reason: str = "",
        status: int | None = None,
        errors: Any = None,
        counter: str = "",
        contact_id: str | None = None,
        confirmed: Sequence[str] = (),
        leases_key: str | None = None,
    ) -> list[str]:
        """``finish_sync`` with the same outcome for each (email, lease) pair, in one round
        trip. ``leases_key`` as for ``begin_many``."""
        pipe = self.redis.pipeline(transaction=False) if len(claims) > 1 else None
        replies = []
        for email, lease in claims:
            reply = self._finish(
                keys=[
                    self.keys.contact(email),
                    leases_key or self.keys.leases,
                    self.keys.due,
                    self.keys.dead,
                    self.keys.stats,
                    self.keys.lease_tokens,
                ],
                args=[
                    email,
                    lease,
                    outcome,
                    int(retry_delay_s * 1000),
                    "1" if count_attempt else "0",
                    int(confirmed_ttl_s * 1000),
                    reason,
                    "" if status is None else str(status),
                    json.dumps(errors if errors is not None else [], ensure_ascii=False),
                    counter,
                    *self._dead_bounds,
                    contact_id or "",
                    len(confirmed),
                    *confirmed,
                ],
                client=pipe,
            )
            replies.append(reply)
        return [_text(reply) for reply in (pipe.execute() if pipe is not None else replies)]

    def mark_failing(self, ttl_s: float) -> None:
        """This destination timed out or answered 5xx or 429: one email at a time for ``ttl_s``."""
        self.redis.set(self.keys.failing, 1, px=max(1, int(ttl_s * 1000)))

    def is_failing(self) -> bool:
        return bool(self.redis.exists(self.keys.failing))

    def take_probe(self, ttl_s: float) -> bool:
        """Become the one sync allowed to reach this failing destination, for ``ttl_s``."""
        return bool(self.redis.set(self.keys.probe, 1, nx=True, px=max(1, int(ttl_s * 1000))))

    def end_probe(self, *, recovered: bool) -> None:
        """Let the next probe go; a probe that succeeded ends the failing state at once."""
        if recovered:
            self.redis.delete(self.keys.probe, self.keys.failing)
        else:
            self.redis.delete(self.keys.probe)

    def incr_stat(self, name: str, amount: int = 1) -> None:
        self.redis.hincrby(self.keys.stats, name, amount)
