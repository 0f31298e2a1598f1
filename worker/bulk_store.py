"""Backlog mode's Redis state: batches of leased emails and the steps that move them on.

A batch is a HASH (``{prefix}:bulk:batch:<id>``) holding its state, its members (email and
lease token pairs) and, once built, its body; ``{prefix}:bulk:batches`` schedules its next
step. Its emails are leased exactly like a sync's (claim.lua's tokens), for
``bulk_lease_s`` at a time, renewed at every poll: the sync path cannot take them while the
batch is in flight, so a later change waits for it and older data never lands last. They
are kept in ``{prefix}:bulk:leases``, apart from the sync path's, so that a batch's emails
do not count against the sync path's rate budget; claim.lua expires both.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker._lua import load_script
from worker.keys import Keys
from worker.redis_client import text

__all__ = ["Batch", "BatchClaim", "BulkLimits", "BulkStore", "Member"]

Member = tuple[str, str]  # (email, lease token)


@dataclass(frozen=True, slots=True)
class BulkLimits:
    """When backlog mode runs, and how big its batches are (reference: bulk import limits)."""

    min_backlog: int  # due emails that start backlog mode; 0 turns it off
    max_batch: int = 250
    # ActiveCampaign advises the sync endpoint for 10 contacts or fewer.
    min_batch: int = 11
    # Emails due for less than this are live traffic, left to the sync path.
    settled_s: float = 1.0
    max_batches: int = 20
    mode_ttl_s: float = 30.0


@dataclass(frozen=True, slots=True)
class BatchClaim:
    mode: bool
    due: int
    batch_id: str | None = None
    members: list[Member] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    id: str
    state: str  # claimed, building, built, submitting, submitted
    members: list[Member]
    created_ms: int
    fields: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def number(self, name: str) -> float:
        return float(self.fields.get(name) or 0)


class BulkStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis: Any = client  # redis-py types replies as Awaitable | Any
        self.keys = keys
        self._claim = load_script(client, "bulk_claim")
        self._steps = load_script(client, "bulk_steps")
        self._save = load_script(client, "bulk_save")
        self._extend = load_script(client, "bulk_extend")

    def claim_batch(self, limits: BulkLimits, *, lease_s: float) -> BatchClaim:
        """Lease the oldest settled due emails as a new batch, when the backlog calls for it."""
        batch_id = uuid.uuid4().hex
        reply = self._claim(
            keys=[
                self.keys.due,
                self.keys.bulk_leases,
                self.keys.lease_tokens,
                self.keys.claims,
                self.keys.bulk_mode,
                self.keys.bulk_batches,
                self.keys.bulk_batch(batch_id),
                self.keys.bulk_sync_only,
                self.keys.bulk_pause,
            ],
            args=[
                limits.min_backlog,
                limits.max_batch,
                limits.min_batch,
                int(limits.settled_s * 1000),
                int(lease_s * 1000),
                limits.max_batches,
                batch_id,
                int(limits.mode_ttl_s * 1000),
            ],
        )
        mode, due = bool(int(reply[0])), int(reply[1])
        if len(reply) < 3:
            return BatchClaim(mode, due)
        flat = [text(item) for item in reply[3:]]
        members = [(flat[n], flat[n + 1]) for n in range(0, len(flat), 2)]
        return BatchClaim(mode, due, text(reply[2]), members)

    def due_steps(self, *, limit: int, step_lease_s: float) -> list[tuple[str, str]]:
        """(batch id, step token) of each batch whose next step is due, handed out now."""
        reply = self._steps(keys=[self.keys.bulk_batches], args=[limit, int(step_lease_s * 1000)])
        flat = [text(item) for item in reply]
        return [(flat[n], flat[n + 1]) for n in range(0, len(flat), 2)]

    def load(self, batch_id: str) -> Batch | None:
        raw = self.redis.hgetall(self.keys.bulk_batch(batch_id))
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        members = [(email, token) for email, token in json.loads(fields.pop("members", "[]"))]
        return Batch(
            id=batch_id,
            state=fields.pop("state", "claimed"),
            members=members,
            created_ms=int(fields.pop("created_ms", "0")),
            fields=fields,
        )

    def save(self, batch_id: str, token: str, *, next_in_s: float, **values: Any) -> str | None:
        """Record a step's result and when the next step is due. Returns the step's new
        token, or None if the step no longer owns the batch (it was presumed dead)."""
        pairs: list[Any] = []
        for name, value in values.items():
            if name == "members":
                value = json.dumps(value)
            pairs += [name, value]
        reply = self._save(
            keys=[self.keys.bulk_batches, self.keys.bulk_batch(batch_id)],
            args=[batch_id, token, int(next_in_s * 1000), *pairs],
        )
        return None if reply in (0, b"0") else text(reply)

    def done(self, batch_id: str, token: str) -> bool:
        """Delete the batch (its emails were all handed on). False if another step owns it."""
        reply = self._save(
            keys=[self.keys.bulk_batches, self.keys.bulk_batch(batch_id)],
            args=[batch_id, token, -1],
        )
        return reply not in (0, b"0")

    def extend(self, members: Sequence[Member], *, lease_s: float) -> int:
        """Renew the batch's leases (0 s ends them: the emails are due again at once)."""
        if not members:
            return 0
        flat = [part for member in members for part in member]
        return int(
            self._extend(
                keys=[self.keys.bulk_leases, self.keys.lease_tokens],
                args=[int(lease_s * 1000), *flat],
            )
        )

    def mark_sync_only(self, emails: Sequence[str], *, for_s: float) -> None:
        """These emails go through /contact/sync for a while, whatever the backlog."""
        if not emails:
            return
        until_ms = int(self._now_ms() + for_s * 1000)
        self.redis.zadd(self.keys.bulk_sync_only, dict.fromkeys(emails, until_ms))

    def _now_ms(self) -> float:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) / 1000
