"""The benchmark's traffic, and the exact number of API requests it needs.

A workload has two phases, each sent in one go and drained before the next starts:

1. every email changes (its first event carries a name, the rest change random attributes,
   with ``occurred_at`` out of order);
2. no-op repeats (values ActiveCampaign already has, sent again with a newer
   ``occurred_at``) mixed with a smaller share of real changes.

``needed_requests`` replays both phases through the same per-attribute last-write-wins
rules the worker applies (order = ``occurred_at``, then stream position; a value equal to
the confirmed one is no change), so the count of emails with a net change is exact and
does not depend on how the changes were drawn.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Confirmed",
    "Workload",
    "WorkloadEvent",
    "generate",
    "needed_requests",
    "sync_batch",
]

FIRST_NAMES = ("Ann", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gia", "Hal", "Ida", "Jon", "Kai")
LAST_NAMES = ("Abe", "Berg", "Cruz", "Diaz", "Eng", "Fox", "Gray", "Holt", "Ito", "Jung", "Kim")
ATTRIBUTES = ("firstName", "lastName", "phone", "field:1", "field:6")
EMAIL = "email"  # the worker merges the email itself as an attribute (see MergeStore.ingest)

Order = tuple[int, int]  # (occurred_at in µs, stream position)
# email -> attribute -> (value, order of the event it came from)
Confirmed = dict[str, dict[str, tuple[str, Order]]]


@dataclass(frozen=True)
class WorkloadEvent:
    """One change, as merge attributes (``field:<id>`` for custom fields)."""

    email: str
    attributes: dict[str, str]
    occurred_at_us: int

    def contact(self) -> dict[str, Any]:
        """The API-shaped contact dict a producer would send."""
        contact: dict[str, Any] = {"email": self.email}
        values = []
        for name, value in self.attributes.items():
            if name.startswith("field:"):
                values.append({"field": name.removeprefix("field:"), "value": value})
            else:
                contact[name] = value
        if values:
            contact["fieldValues"] = values
        return contact

    @property
    def occurred_at(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            microseconds=self.occurred_at_us
        )


@dataclass(frozen=True)
class Workload:
    emails: list[str]
    phases: list[list[WorkloadEvent]]
    no_op_repeats: int
    needed: list[int] = field(default_factory=list)  # requests each phase needs

    @property
    def events(self) -> int:
        return sum(len(phase) for phase in self.phases)


def sync_batch(confirmed: Confirmed, batch: Sequence[WorkloadEvent], *, start: int) -> set[str]:
    """Merge ``batch`` as the worker does, sync every email once; return those that sent.

    ``start`` is the stream position of the batch's first event. ``confirmed`` is updated
    to what ActiveCampaign holds afterwards (stamps too, as ``begin.lua`` does for
    attributes it drops as unchanged).
    """
    pending: dict[str, dict[str, tuple[str, Order]]] = {}
    for position, event in enumerate(batch, start):
        order = (event.occurred_at_us, position)
        mine = pending.setdefault(event.email, {})
        known = confirmed.get(event.email, {})
        for name, value in ((EMAIL, event.email), *event.attributes.items()):
            stamps = [entry[1] for entry in (mine.get(name), known.get(name)) if entry]
            if not stamps or order > max(stamps):
                mine[name] = (value, order)
    sent = set()
    for email, values in pending.items():
        known = confirmed.setdefault(email, {})
        if any(name not in known or known[name][0] != value for name, (value, _) in values.items()):
            sent.add(email)
        known.update(values)
    return sent


def needed_requests(phases: Iterable[Sequence[WorkloadEvent]]) -> list[int]:
    """Requests each phase needs: the emails whose merged state differs from the confirmed."""
    confirmed: Confirmed = {}
    counts, start = [], 0
    for batch in phases:
        counts.append(len(sync_batch(confirmed, batch, start=start)))
        start += len(batch)
    return counts


def _value(rng: random.Random, name: str) -> str:
    if name == "firstName":
        return rng.choice(FIRST_NAMES)
    if name == "lastName":
        return rng.choice(LAST_NAMES)
    if name == "phone":
        return f"{rng.randrange(10**9, 10**10)}"
    if name == "field:6":
        return (dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(25_000))).isoformat()
    return f"plan-{rng.randrange(1000)}"


def _change(rng: random.Random, email: str, at_us: int) -> WorkloadEvent:
    names = rng.sample(ATTRIBUTES, rng.randint(1, 3))
    return WorkloadEvent(email, {name: _value(rng, name) for name in names}, at_us)


def generate(
    *,
    events: int,
    emails: int,
    seed: int = 7,
    repeat_share: float = 0.2,
    late_change_share: float = 0.1,
    start: dt.datetime | None = None,
) -> Workload:
    """``events`` changes over ``emails`` emails; ``repeat_share`` of them no-op repeats.

    Phase 2 holds the repeats and ``late_change_share`` of the events as real changes.
    ``occurred_at`` values lie within a minute per phase, shuffled against send order.
    """
    repeats = round(events * repeat_share)
    late = round(events * late_change_share)
    first = events - repeats - late
    if first < emails or emails < 1:
        raise ValueError("phase 1 must hold at least one event per email")
    rng = random.Random(seed)
    base_us = int(((start or dt.datetime.now(dt.UTC)) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
                  .total_seconds() * 1_000_000) - 600_000_000  # fmt: skip
    addresses = [f"user{number:06d}@bench.example.com" for number in range(emails)]

    def at(phase: int) -> int:
        return base_us + phase * 120_000_000 + rng.randrange(60_000_000)

    # Every email's first event comes early in the stream, so all emails fall due together.
    order = rng.sample(addresses, len(addresses))
    phase1 = [
        WorkloadEvent(email, {"firstName": _value(rng, "firstName"),
                              "lastName": _value(rng, "lastName")}, at(0))
        for email in order
    ]  # fmt: skip
    rest = [_change(rng, rng.choice(addresses), at(0)) for _ in range(first - emails)]
    phase1 += rest

    confirmed: Confirmed = {}
    needed = [len(sync_batch(confirmed, phase1, start=0))]
    phase2 = [_change(rng, rng.choice(addresses), at(1)) for _ in range(late)]
    for _ in range(repeats):
        email = rng.choice(addresses)
        known = [name for name in confirmed[email] if name != EMAIL]
        names = rng.sample(known, rng.randint(1, len(known)))
        phase2.append(WorkloadEvent(email, {n: confirmed[email][n][0] for n in names}, at(1)))
    rng.shuffle(phase2)
    needed.append(len(sync_batch(confirmed, phase2, start=len(phase1))))
    return Workload(addresses, [phase1, phase2], repeats, needed)
