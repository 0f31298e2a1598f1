"""Dead letters: list, show, replay and purge the entries of a destination's ``dead`` stream.

A dead letter is a stream entry with a ``reason``:
- ``invalid_event``: the raw entry failed validation (``errors``, ``raw``, ``event_id``);
- ``unknown_destination``: a valid event named a destination that is not configured
  (``errors``, ``raw``, ``event_id``);
- ``api_rejected``: ActiveCampaign answered 400/422 (``status``, ``errors`` = its titles);
- ``retry_expired``: retryable failures outlasted max_retry_age_s.
Sync dead letters keep ``attributes`` as ``{name: [value, order key]}``, so a replay
re-enqueues each value with its original ``occurred_at`` and cannot overwrite newer data.

Each destination has its own dead letters (``Keys(prefix, name).dead``); the two reasons
about whole stream entries land in ``default``'s, since no destination took the entry. A
replayed sync letter goes back to the destination whose stream held it; a replayed raw
entry goes back as it was written, naming whatever destination it named.

The stream is bounded (``CONTACT_SYNC_DEAD_LETTER_MAX_COUNT`` and ``_MAX_AGE_S``, applied by
the scripts that write it), and everything here reads it in pages of ``PAGE_SIZE``, so no
command loads the whole stream at once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from worker.errors import InvalidContactEvent
from worker.event import attributes_to_event_contact
from worker.keys import DEFAULT_DESTINATION, Keys
from worker.redis_client import text as _text
from worker.schema import encode_event

__all__ = ["PAGE_SIZE", "DeadLetter", "DeadLetters"]

PAGE_SIZE = 500

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A full stream id. XRANGE reads "1700000000000" as a whole millisecond's range and XDEL
# rejects malformed ids outright, so anything else is "not found" before Redis sees it.
_STREAM_ID = re.compile(r"\d+-\d+")


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
    first_attempt_at: dt.datetime | None = None
    entry: str | None = None  # the rejected stream entry's id (invalid events only)

    def attribute_occurred_at(self) -> dict[str, dt.datetime]:
        """When each attribute's value was changed: the occurred_at in its order key."""
        return {name: _occurred_at(order) for name, (_, order) in self.attributes.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "email": self.email,
            "status": self.status,
            "errors": self.errors,
            "dead_at": _iso(self.dead_at),
            "attributes": {name: value for name, (value, _) in self.attributes.items()},
            "attributes_occurred_at": {
                name: when.isoformat() for name, when in self.attribute_occurred_at().items()
            },
            "raw": self.raw,
            "event_id": self.event_id,
            "entry": self.entry,
            "attempts": self.attempts,
            "first_attempt_at": _iso(self.first_attempt_at),
        }

    def replay_events(self, destination: str = DEFAULT_DESTINATION) -> list[dict[str, str]]:
        """The stream fields to XADD to deliver this dead letter again; re-encoded changes go
        to ``destination`` (the one whose dead letters held this letter)."""
        if self.raw is not None and not self.attributes:
            return [{"event": self.raw}]
        if self.email is None:
            return []
        by_time: dict[dt.datetime, dict[str, str]] = {}
        for name, (value, order) in self.attributes.items():
            if name != "email":  # the letter's own email; a new contact's is sent anyway
                wire_name, wire_value = _as_written(name, value)
                by_time.setdefault(_occurred_at(order), {})[wire_name] = wire_value
        events = []
        for occurred_at, attributes in sorted(by_time.items()):
            try:
                contact = attributes_to_event_contact(self.email, attributes.items())
                _, text = encode_event(
                    contact,
                    occurred_at=occurred_at,
                    source=f"replay:{self.id}",
                    destination=destination,
                )
            except InvalidContactEvent:
                # Valid when it was written; a later, stricter schema is the only way here.
                return []
            events.append({"event": text})
        return events


class DeadLetters:
    """The dead letters of one destination: those in ``keys.dead``."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis: Any = client  # redis-py types replies as Awaitable | Any
        self.keys = keys

    def count(self) -> int:
        return int(self.redis.xlen(self.keys.dead))

    def pages(self, *, reason: str | None = None) -> Iterator[list[DeadLetter]]:
        """Every dead letter (with ``reason``, if given), oldest first, a page at a time."""
        start = "-"
        while True:
            entries = self.redis.xrange(self.keys.dead, min=start, count=PAGE_SIZE)
            if not entries:
                return
            letters = [_parse(entry_id, fields) for entry_id, fields in entries]
            page = [letter for letter in letters if reason is None or letter.reason == reason]
            if page:
                yield page
            start = "(" + letters[-1].id  # exclusive: entries deleted meanwhile are fine
            if len(entries) < PAGE_SIZE:
                return

    def list(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        """Oldest first, at most ``limit``."""
        letters: list[DeadLetter] = []
        for page in self.pages(reason=reason):
            letters += page[: limit - len(letters)]
            if len(letters) >= limit:
                break
        return letters

    def get(self, letter_id: str) -> DeadLetter | None:
        """The dead letter with exactly this id, or None (also for a malformed id)."""
        if not _STREAM_ID.fullmatch(letter_id):
            return None
        entries = self.redis.xrange(self.keys.dead, min=letter_id, max=letter_id)
        return _parse(*entries[0]) if entries else None

    def replay(self, letter_ids: Iterable[str]) -> dict[str, str]:
        """Re-enqueue each dead letter and delete it, atomically per letter.

        Returns ``{id: "replayed" | "not found" | "nothing to replay"}``.
        """
        results: dict[str, str] = {}
        for letter_id in letter_ids:
            letter = self.get(letter_id)
            results[letter_id] = "not found" if letter is None else self._replay(letter)
        return results

    def replay_all(self, *, reason: str | None = None) -> dict[str, str]:
        """Replay every dead letter (with ``reason``, if given), a page at a time."""
        return {
            letter.id: self._replay(letter) for page in self.pages(reason=reason) for letter in page
        }

    def _replay(self, letter: DeadLetter) -> str:
        events = letter.replay_events(self.keys.destination)
        if not events:
            return "nothing to replay"
        pipe = self.redis.pipeline(transaction=True)
        for fields in events:
            pipe.xadd(self.keys.events, fields)
        pipe.xdel(self.keys.dead, letter.id)
        pipe.execute()
        return "replayed"

    def purge(self, letter_ids: Iterable[str]) -> int:
        """Delete the given dead letters. Returns how many were deleted."""
        ids = [letter_id for letter_id in letter_ids if _STREAM_ID.fullmatch(letter_id)]
        return int(self.redis.xdel(self.keys.dead, *ids)) if ids else 0

    def purge_all(self, *, reason: str | None = None) -> int:
        """Delete every dead letter (with ``reason``, if given). Returns how many."""
        if reason is not None:
            return sum(
                self.purge([letter.id for letter in page]) for page in self.pages(reason=reason)
            )
        # One transaction, so a letter written between the count and the delete is neither
        # lost uncounted nor miscounted.
        pipe = self.redis.pipeline(transaction=True)
        pipe.xlen(self.keys.dead)
        pipe.delete(self.keys.dead)
        count, _ = pipe.execute()
        return int(count)


def _parse(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    get = {_text(k): _text(v) for k, v in fields.items()}
    status = get.get("status")
    dead_at_ms = get.get("dead_at")
    first_attempt_ms = get.get("first_attempt_at")
    attributes = _loads(get.get("attributes"))
    if not isinstance(attributes, dict):  # cjson encodes an empty table as {}; be defensive
        attributes = {}
    return DeadLetter(
        id=_text(entry_id),
        reason=get.get("reason", "unknown"),
        email=get.get("email") or None,
        status=int(status) if status else None,
        errors=_loads(get.get("errors")),
        dead_at=_from_ms(dead_at_ms),
        attributes=attributes,
        raw=get.get("raw"),
        event_id=get.get("event_id") or None,
        attempts=int(get["attempts"]) if get.get("attempts") else None,
        first_attempt_at=_from_ms(first_attempt_ms),
        entry=get.get("entry") or None,
    )


def _as_written(name: str, value: str) -> tuple[str, str]:
    """An attribute as an event writes it. A sync dead letter holds a tag as the merge
    store does (``tag:<lower-case name>`` = flag + name); an event says ``tag:<Name>`` = flag."""
    if name.startswith("tag:") and len(value) > 1:
        return f"tag:{value[1:]}", value[:1]
    return name, value


def _from_ms(millis: str | None) -> dt.datetime | None:
    return _EPOCH + dt.timedelta(milliseconds=int(millis)) if millis else None


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None


def _occurred_at(order_key: str) -> dt.datetime:
    """The occurred_at in an order key: its first 16 digits, in microseconds since the epoch."""
    return _EPOCH + dt.timedelta(microseconds=int(order_key[:16]))


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
