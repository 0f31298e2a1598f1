"""A snapshot of the pipeline's state for ``contact-sync status`` (and metrics).

The events stream and the pump are shared by every destination; everything else (the
schedule, leases, limiter, bulk import, dead letters, counters) is each destination's own
(worker/keys.py). ``read_status`` reads one destination with the shared figures;
``read_overview`` reads every destination an operator looks at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from worker.keys import CONSUMER_GROUP, DEFAULT_DESTINATION, Keys
from worker.redis_client import text as _text

__all__ = [
    "SHARED_FIGURES",
    "Overview",
    "Status",
    "read_overview",
    "read_status",
    "reported_destinations",
]

#: The Status fields read from what all destinations share: the events stream and the pump.
SHARED_FIGURES = (
    "stream_backlog",
    "stream_unacked",
    "oldest_event_age_s",
    "pump_running",
    "pump_holder",
)


@dataclass(frozen=True, slots=True)
class Status:
    stream_backlog: int  # entries not yet merged (unread + read but unacknowledged)
    stream_unacked: int
    oldest_event_age_s: float | None  # age of the oldest entry still in the stream
    pending_contacts: int  # emails with a sync scheduled (debounce, backoff or due now)
    due_now: int
    most_overdue_s: float | None  # how late the most overdue scheduled sync is
    in_flight: int  # emails under lease (a sync task is queued or running)
    dead_letters: int
    dead_letters_trimmed: int  # dropped by the dead-letter bounds since the start
    limiter_sent_in_window: int
    limiter_paused_for_s: float
    pump_running: bool
    pump_holder: str | None  # the Celery node whose pump thread holds the lock
    bulk_mode: bool = False  # the due backlog drains through bulk import now
    bulk_batches: int = 0  # batches in flight: being built, waiting to submit, or submitted
    bulk_batches_submitted: int = 0  # of which ActiveCampaign is processing
    bulk_in_flight: int = 0  # emails in those batches
    bulk_oldest_batch_age_s: float | None = None
    bulk_paused_for_s: float = 0.0  # after "Rate limit exceeded." from bulk import
    counters: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shared_figures(self) -> dict[str, Any]:
        """The figures every destination shares (stream and pump)."""
        return {name: getattr(self, name) for name in SHARED_FIGURES}

    def own_figures(self) -> dict[str, Any]:
        """The figures of this destination alone: everything but the stream and the pump."""
        return {name: value for name, value in self.as_dict().items() if name not in SHARED_FIGURES}


@dataclass(frozen=True, slots=True)
class Overview:
    """The status of every destination reported on, in order (see reported_destinations)."""

    statuses: dict[str, Status]

    @property
    def single(self) -> bool:
        """Only ``default``: the shape a single-account deployment always had."""
        return list(self.statuses) == [DEFAULT_DESTINATION]

    def as_dict(self) -> dict[str, Any]:
        """``Status.as_dict()`` for a single account. With several destinations, the shared
        figures once, and each destination's own under ``destinations``."""
        if self.single:
            return self.statuses[DEFAULT_DESTINATION].as_dict()
        first = next(iter(self.statuses.values()))
        return {
            **first.shared_figures(),
            "destinations": {name: status.own_figures() for name, status in self.statuses.items()},
        }


def reported_destinations(configured: Iterable[str]) -> tuple[str, ...]:
    """The destinations that status, metrics and dead letters cover: the configured ones in
    their order, then ``default`` if they leave it out, because ``default``'s keys still hold
    the dead letters of events no destination takes (invalid, or naming an unknown one)."""
    names = tuple(configured)
    return names if DEFAULT_DESTINATION in names else (*names, DEFAULT_DESTINATION)


def read_overview(redis_client: redis.Redis, keys: Keys, destinations: Iterable[str]) -> Overview:
    """``read_status`` for each destination under ``keys``' prefix, one after the other (a
    few small round trips each; the shared figures are those of the first)."""
    return Overview(
        {name: read_status(redis_client, keys.for_destination(name)) for name in destinations}
    )


def read_status(redis_client: redis.Redis, keys: Keys) -> Status:
    """Read everything against the Redis clock: one pipelined round trip, then one or two
    small ones (the group's pending summary, and how many are due when any are scheduled)."""
    client: Any = redis_client  # redis-py types replies as Awaitable | Any
    pipe = client.pipeline(transaction=False)
    pipe.time()
    pipe.xlen(keys.events)
    pipe.xrange(keys.events, count=1)
    pipe.zcard(keys.due)
    pipe.zrange(keys.due, 0, 0, withscores=True)
    pipe.zcard(keys.leases)
    pipe.xlen(keys.dead)
    pipe.lrange(keys.rate_log, 0, -1)
    pipe.get(keys.rate_pause)
    pipe.get(keys.pump_lock)
    pipe.hgetall(keys.stats)
    pipe.exists(keys.bulk_mode)
    pipe.zrange(keys.bulk_batches, 0, -1)
    pipe.zcard(keys.bulk_leases)
    pipe.get(keys.bulk_pause)
    (now, backlog, first, pending, head, leases, dead, sends, pause, pump, counters,
     bulk_mode, batch_ids, bulk_leases, bulk_pause) = pipe.execute()  # fmt: skip
    now_ms = now[0] * 1000 + now[1] // 1000  # TIME is (seconds, microseconds)
    unacked = 0
    try:
        summary = client.xpending(keys.events, CONSUMER_GROUP)
        unacked = int(summary.get("pending", 0))
    except redis.ResponseError:
        pass  # no group yet: nothing was ever read
    oldest_event_age = None
    if first:
        first_ms = int(_text(first[0][0]).split("-")[0])
        oldest_event_age = max(0.0, (now_ms - first_ms) / 1000)
    most_overdue = None
    due_now = 0
    if head:
        due_now = int(client.zcount(keys.due, "-inf", now_ms))
        overdue_ms = now_ms - int(head[0][1])
        most_overdue = max(0.0, overdue_ms / 1000) if overdue_ms >= 0 else None
    batches = _batch_ages(client, keys, [_text(item) for item in batch_ids], now_ms)
    return Status(
        stream_backlog=int(backlog),
        stream_unacked=unacked,
        oldest_event_age_s=oldest_event_age,
        pending_contacts=int(pending),
        due_now=due_now,
        most_overdue_s=most_overdue,
        in_flight=int(leases),
        dead_letters=int(dead),
        dead_letters_trimmed=int(counters.get(b"dead_trimmed", 0)),
        limiter_sent_in_window=sum(1 for sent in sends if now_ms - int(sent) < 1000),
        limiter_paused_for_s=max(0.0, (int(pause) - now_ms) / 1000) if pause else 0.0,
        pump_running=pump is not None,
        pump_holder=_text(pump).split("/")[0] if pump is not None else None,
        counters={_text(k): int(v) for k, v in counters.items()},
        bulk_mode=bool(bulk_mode),
        bulk_batches=len(batches),
        bulk_batches_submitted=sum(1 for state, _ in batches if state == "submitted"),
        bulk_in_flight=int(bulk_leases),
        bulk_oldest_batch_age_s=max((age for _, age in batches), default=None),
        bulk_paused_for_s=max(0.0, (int(bulk_pause) - now_ms) / 1000) if bulk_pause else 0.0,
    )


def _batch_ages(
    client: Any, keys: Keys, batch_ids: list[str], now_ms: int
) -> list[tuple[str, float]]:
    """(state, age in s) of each bulk batch in flight (at most a few dozen)."""
    pipe = client.pipeline(transaction=False)
    for batch_id in batch_ids:
        pipe.hmget(keys.bulk_batch(batch_id), "state", "created_ms")
    return [
        (_text(state or b""), max(0.0, (now_ms - int(created or 0)) / 1000))
        for state, created in pipe.execute()
        if state is not None
    ]
