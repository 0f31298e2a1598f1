"""Dead letters: list, show, replay and purge the entries of ``{prefix}:dead``.

A dead letter is a stream entry with a ``reason``:
- ``invalid_event``: the raw entry failed validation (``errors``, ``raw``, ``event_id``);
- ``api_rejected``: ActiveCampaign answered 400/422 (``status``, ``errors`` = its titles);
- ``retry_expired``: retryable failures outlasted max_retry_age_s.
Sync dead letters keep ``attributes`` as ``{name: [value, order key]}``, so a replay
re-enqueues each value with its original ``occurred_at`` and cannot overwrite newer data.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from worker.keys import Keys

__all__ = ["DeadLetter", "DeadLetters"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    reason: str
    email: str | None
    status: int | None
    errors: Any
    dead_at: dt.datetime | None
    attributes: dict[str, list[str]]
    raw: str | None
    event_id: str | None
    attempts: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "email": self.email,
            "status": self.status,
            "errors": self.errors,
            "dead_at": self.dead_at.isoformat() if self.dead_at else None,
            "attributes": {name: value for name, (value, _) in self.attributes.items()},
            "raw": self.raw,
            "event_id": self.event_id,
            "attempts": self.attempts,
        }

    def replay_events(self) -> list[dict[str, str]]:
        """The stream fields to XADD to deliver this dead letter again."""
        if self.raw is not None and not self.attributes:
            return [{"event": self.raw}]
        if self.email is None:
            return []
        by_time: dict[int, dict[str, str]] = {}
        for name, (value, order) in self.attributes.items():
            by_time.setdefault(int(order[:16]), {})[name] = value
        events = []
        for occurred_us, attributes in sorted(by_time.items()):
            contact: dict[str, Any] = {"email": self.email}
            field_values = []
            for name, value in attributes.items():
                if name.startswith("field:"):
                    field_values.append({"field": name[6:], "value": value})
                elif name != "email":
                    contact[name] = value
            if field_values:
                contact["fieldValues"] = field_values
            occurred_at = _EPOCH + dt.timedelta(microseconds=occurred_us)
            document = {
                "v": 1,
                "id": str(uuid.uuid4()),
                "occurred_at": occurred_at.isoformat(),
                "source": f"replay:{self.id}",
                "contact": contact,
            }
            events.append({"event": json.dumps(document, ensure_ascii=False, separators=(",", ":"))})
        return events


class DeadLetters:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def count(self) -> int:
        return int(self.redis.xlen(self.keys.dead))

    def list(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Oldest first, at most ``limit``."""
        letters = [_parse(entry_id, fields) for entry_id, fields in self.redis.xrange(self.keys.dead, count=limit if reason is None else None)]
        if reason is not None:
            letters = [letter for letter in letters if letter.reason == reason][:limit]
        return letters

    def get(self, letter_id: str) -> DeadLetter | None:
        entries = self.redis.xrange(self.keys.dead, min=letter_id, max=letter_id)
        return _parse(*entries[0]) if entries else None

    def replay(self, letter_ids: Iterable[str]) -> dict[str, str]:
        """Re-enqueue each dead letter and delete it, atomically per letter.

        Returns ``{id: "replayed" | "not found" | "nothing to replay"}``.
        """
        results: dict[str, str] = {}
        for letter_id in letter_ids:
            letter = self.get(letter_id)
            if letter is None:
                results[letter_id] = "not found"
                continue
            events = letter.replay_events()
            if not events:
                results[letter_id] = "nothing to replay"
                continue
            pipe = self.redis.pipeline(transaction=True)
            for fields in events:
                pipe.xadd(self.keys.events, fields)  # type: ignore[arg-type]
            pipe.xdel(self.keys.dead, letter_id)
            pipe.execute()
            results[letter_id] = "replayed"
        return results

    def all_ids(self) -> list[str]:
        return [_text(entry_id) for entry_id, _ in self.redis.xrange(self.keys.dead)]

    def purge(self, letter_ids: Iterable[str] | None = None) -> int:
        """Delete the given dead letters, or all of them. Returns how many were deleted."""
        if letter_ids is None:
            count = self.count()
            self.redis.delete(self.keys.dead)
            return count
        ids = list(letter_ids)
        return int(self.redis.xdel(self.keys.dead, *ids)) if ids else 0


def _parse(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    get = {_text(k): _text(v) for k, v in fields.items()}
    status = get.get("status")
    dead_at_ms = get.get("dead_at")
    attributes_raw = get.get("attributes")
    attributes = json.loads(attributes_raw) if attributes_raw else {}
    if not isinstance(attributes, dict):  # cjson encodes an empty table as {}; be defensive
        attributes = {}
    return DeadLetter(
        id=_text(entry_id),
        reason=get.get("reason", "unknown"),
        email=get.get("email") or None,
        status=int(status) if status else None,
        errors=_loads(get.get("errors")),
        dead_at=_EPOCH + dt.timedelta(milliseconds=int(dead_at_ms)) if dead_at_ms else None,
        attributes=attributes,
        raw=get.get("raw"),
        event_id=get.get("event_id") or None,
        attempts=int(get["attempts"]) if get.get("attempts") else None,
    )


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
