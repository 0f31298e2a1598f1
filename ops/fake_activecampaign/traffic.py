"""What arrived and how it was answered: the request log, counters and concurrency peaks.

Only client traffic is recorded (everything outside `/_emulator/`). The `Api-Token` header
is never part of a record, so the log and stats can be printed or attached to CI output.
The log keeps each request's real path; the counters group paths by route template
(`/api/3/contactTags/{contactTag}`), so `by_route["GET /api/3/fields"]` counts every page
of every field catalog read.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fake_activecampaign.exchange import Request

__all__ = ["LOG_LIMIT", "Traffic"]

# Enough for an hour at the real limit (5/s); older entries are dropped, counters are not.
LOG_LIMIT = 20_000


class Traffic:
    """Thread-safe request log and counters. `reset()` keeps in-flight requests counted."""

    _requests_total: int
    _by_status: Counter[str]
    _by_path: Counter[str]
    _by_route: Counter[str]
    _created: int
    _updated: int
    _rate_limited: int
    _ignored_attributes: int
    _unknown_field_values: int
    _malformed_field_values: int
    _resubscribed: int
    _max_in_flight: int
    _max_in_flight_per_email: int
    _first_request_at: float | None  # epoch seconds
    _last_request_at: float | None  # epoch seconds

    def __init__(self, *, log_limit: int = LOG_LIMIT) -> None:
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self._in_flight = 0
        self._in_flight_by_email: Counter[str] = Counter()
        self._reset_counters()

    @contextmanager
    def in_flight(self, email: str | None) -> Iterator[None]:
        """Count a request as being handled, overall and for its (lower-cased) email."""
        key = None if email is None else email.lower()
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            if key is not None:
                self._in_flight_by_email[key] += 1
                self._max_in_flight_per_email = max(
                    self._max_in_flight_per_email, self._in_flight_by_email[key]
                )
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if key is not None:
                    self._in_flight_by_email[key] -= 1
                    if self._in_flight_by_email[key] <= 0:
                        del self._in_flight_by_email[key]

    def record(self, request: Request, *, status: int, email: str | None, template: str) -> None:
        """Log one answered request; status 0 means the connection was reset unanswered.

        `template` is the route template the path fits, or the path when none does.
        """
        entry = {
            "t": request.arrived_at_s,
            "method": request.method,
            "path": request.path,
            "status": status,
            "email": email,
            "body": request.body,
        }
        with self._lock:
            self._log.append(entry)
            self._requests_total += 1
            self._by_status[str(status)] += 1
            self._by_path[template] += 1
            self._by_route[f"{request.method} {template}"] += 1
            if status == 429:
                self._rate_limited += 1
            if self._first_request_at is None:
                self._first_request_at = request.arrived_at_s
            if self._last_request_at is None or request.arrived_at_s > self._last_request_at:
                self._last_request_at = request.arrived_at_s

    def count_ignored(self, *, attributes: int) -> None:
        with self._lock:
            self._ignored_attributes += attributes

    def count_sync(
        self, *, created: bool, unknown_field_values: int, malformed_field_values: int
    ) -> None:
        with self._lock:
            if created:
                self._created += 1
            else:
                self._updated += 1
            self._unknown_field_values += unknown_field_values
            self._malformed_field_values += malformed_field_values

    def count_resubscribe(self) -> None:
        """A contact that had unsubscribed from a list was subscribed again."""
        with self._lock:
            self._resubscribed += 1

    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    def stats(self, *, max_per_second: int) -> dict[str, Any]:
        """The `GET /_emulator/stats` body; the peak rate comes from the arrival window."""
        with self._lock:
            return {
                "requests_total": self._requests_total,
                "by_status": dict(self._by_status),
                "by_path": dict(self._by_path),
                "by_route": dict(self._by_route),
                "created": self._created,
                "updated": self._updated,
                "rate_limited": self._rate_limited,
                "max_per_second": max_per_second,
                "max_in_flight_per_email": self._max_in_flight_per_email,
                "max_in_flight": self._max_in_flight,
                "in_flight": self._in_flight,
                "ignored_attributes": self._ignored_attributes,
                "unknown_field_values": self._unknown_field_values,
                "malformed_field_values": self._malformed_field_values,
                "resubscribed": self._resubscribed,
                "first_request_at": self._first_request_at,
                "last_request_at": self._last_request_at,
            }

    def reset(self) -> None:
        with self._lock:
            self._log.clear()
            self._reset_counters()

    def _reset_counters(self) -> None:
        self._requests_total = 0
        self._by_status = Counter()
        self._by_path = Counter()
        self._by_route = Counter()
        self._created = 0
        self._updated = 0
        self._rate_limited = 0
        self._ignored_attributes = 0
        self._unknown_field_values = 0
        self._malformed_field_values = 0
        self._resubscribed = 0
        self._max_in_flight = 0
        self._max_in_flight_per_email = 0
        self._first_request_at = None
        self._last_request_at = None
