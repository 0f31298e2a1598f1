"""How the emulator works its bulk import queue, and the bulk faults tests inject.

Settings (JSON-settable through `POST /_emulator/bulk`, merged key by key; a key set to
null goes back to its constructed value; `"clear": true` first restores all of those):

- ``speed_per_s``: contacts applied per second, over all batches (> 0; default 1000).
- ``paused``: true stops claiming batches and applying contacts; submissions still queue.
- ``status_false_s``: seconds after submission during which `import/info` answers
  ``{"status": false}`` and the batch cannot be claimed (>= 0; default 0.25).
- ``multi_per_minute`` / ``single_per_minute``: the per-minute request limits for
  multi-contact and single-contact requests (documented 100 and 20; 0 disables).
- ``fail_emails``: regexes (searched, case-insensitive); a contact whose email matches
  fails at processing time: it is listed under `failure` and nothing of it is stored.
- ``next_batches``: ``{"status": "failed" | "interrupted", "count": N, "after": K | null}``:
  the next N batches to be claimed end with that status. "failed" applies nothing;
  "interrupted" processes the first K contacts (default: half, rounded down) and stops.
- ``force_rate_limit``: the next N bulk_import requests are refused with the bulk rate
  limit's 400, whatever the windows say.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "DEFAULT_MULTI_PER_MINUTE",
    "DEFAULT_SINGLE_PER_MINUTE",
    "DEFAULT_SPEED_PER_S",
    "DEFAULT_STATUS_FALSE_S",
    "BatchFate",
    "BulkConfigError",
    "BulkSettings",
]

DEFAULT_SPEED_PER_S = 1000.0
DEFAULT_STATUS_FALSE_S = 0.25
DEFAULT_MULTI_PER_MINUTE = 100.0  # documented
DEFAULT_SINGLE_PER_MINUTE = 20.0  # documented
_FATES = ("failed", "interrupted")
_KEYS = {
    "speed_per_s",
    "paused",
    "status_false_s",
    "multi_per_minute",
    "single_per_minute",
    "fail_emails",
    "next_batches",
    "force_rate_limit",
}


class BulkConfigError(ValueError):
    """A bulk setting that cannot be applied; the admin API answers 400 with the message."""


@dataclass(frozen=True, slots=True)
class BatchFate:
    """How a batch ends instead of "completed"."""

    status: Literal["failed", "interrupted"]
    after: int | None = None  # contacts processed before an interruption; None: half

    def stop_after(self, total: int) -> int:
        """How many of `total` contacts are processed before the batch ends."""
        if self.status == "failed":
            return 0
        return min(total, total // 2 if self.after is None else self.after)


@dataclass(slots=True)
class _Settings:
    speed_per_s: float = DEFAULT_SPEED_PER_S
    paused: bool = False
    status_false_s: float = DEFAULT_STATUS_FALSE_S
    multi_per_minute: float = DEFAULT_MULTI_PER_MINUTE
    single_per_minute: float = DEFAULT_SINGLE_PER_MINUTE
    fail_emails: tuple[re.Pattern[str], ...] = field(default=())
    fate: BatchFate | None = None
    fate_remaining: int = 0
    force_rate_limit: int = 0


class BulkSettings:
    """Thread-safe bulk settings; `reset()` restores the constructed ones."""

    def __init__(self, *, speed_per_s: float = DEFAULT_SPEED_PER_S) -> None:
        self._initial = _Settings()
        _apply(self._initial, {"speed_per_s": speed_per_s}, defaults=_Settings())
        self._settings = replace(self._initial)
        self._lock = threading.Lock()

    def update(self, changes: Mapping[str, Any]) -> None:
        """Merge `changes` (the admin JSON). Raises BulkConfigError and changes nothing
        when any key is invalid."""
        changes = dict(changes)
        clear = changes.pop("clear", False)
        if not isinstance(clear, bool):
            raise BulkConfigError("clear must be true or false")
        unknown = sorted(set(changes) - _KEYS)
        if unknown:
            raise BulkConfigError(f"unknown bulk settings: {', '.join(unknown)}")
        with self._lock:
            candidate = replace(self._initial if clear else self._settings)
            _apply(candidate, changes, defaults=self._initial)
            self._settings = candidate

    def reset(self) -> None:
        with self._lock:
            self._settings = replace(self._initial)

    def speed_per_s(self) -> float:
        with self._lock:
            return self._settings.speed_per_s

    def paused(self) -> bool:
        with self._lock:
            return self._settings.paused

    def status_false_s(self) -> float:
        with self._lock:
            return self._settings.status_false_s

    def per_minute(self, *, single: bool) -> float:
        """The request limit per minute for single- or multi-contact requests; 0: none."""
        with self._lock:
            s = self._settings
            return s.single_per_minute if single else s.multi_per_minute

    def fails_email(self, email: str) -> bool:
        with self._lock:
            patterns = self._settings.fail_emails
        return any(pattern.search(email) for pattern in patterns)

    def take_fate(self) -> BatchFate | None:
        """The forced ending of the batch being claimed now, if any (uses one up)."""
        with self._lock:
            s = self._settings
            if s.fate is None or s.fate_remaining <= 0:
                return None
            fate = s.fate
            s.fate_remaining -= 1
            if s.fate_remaining == 0:
                s.fate = None
            return fate

    def take_forced_rate_limit(self) -> bool:
        """True when this bulk_import request must be refused as rate limited."""
        with self._lock:
            if self._settings.force_rate_limit <= 0:
                return False
            self._settings.force_rate_limit -= 1
            return True

    def snapshot(self) -> dict[str, Any]:
        """The settings in force as JSON (what `GET /_emulator/bulk` answers)."""
        with self._lock:
            s = self._settings
            next_batches = None
            if s.fate is not None:
                next_batches = {
                    "status": s.fate.status,
                    "count": s.fate_remaining,
                    "after": s.fate.after,
                }
            return {
                "speed_per_s": s.speed_per_s,
                "paused": s.paused,
                "status_false_s": s.status_false_s,
                "multi_per_minute": s.multi_per_minute,
                "single_per_minute": s.single_per_minute,
                "fail_emails": [pattern.pattern for pattern in s.fail_emails],
                "next_batches": next_batches,
                "force_rate_limit": s.force_rate_limit,
            }


def _apply(s: _Settings, changes: Mapping[str, Any], *, defaults: _Settings) -> None:
    for key, value in changes.items():
        if value is None and key != "next_batches":
            setattr(s, key, getattr(defaults, key))
        elif key == "speed_per_s":
            s.speed_per_s = _number(key, value, minimum=0, exclusive=True)
        elif key == "paused":
            if not isinstance(value, bool):
                raise BulkConfigError("paused must be true or false")
            s.paused = value
        elif key in ("status_false_s", "multi_per_minute", "single_per_minute"):
            setattr(s, key, _number(key, value, minimum=0))
        elif key == "fail_emails":
            s.fail_emails = _patterns(value)
        elif key == "next_batches":
            s.fate, s.fate_remaining = _fate(value)
        elif key == "force_rate_limit":
            s.force_rate_limit = _count(key, value)


def _fate(value: Any) -> tuple[BatchFate | None, int]:
    if value is None:
        return None, 0
    if not isinstance(value, dict) or value.get("status") not in _FATES:
        raise BulkConfigError(
            'next_batches must be {"status": "failed" | "interrupted", "count": N, "after": K}'
        )
    count = _count("next_batches.count", value.get("count", 1))
    after = value.get("after")
    if after is not None:
        after = _count("next_batches.after", after)
    if count == 0:
        return None, 0
    return BatchFate(value["status"], after), count


def _count(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BulkConfigError(f"{name} must be a non-negative integer")
    return value


def _patterns(value: Any) -> tuple[re.Pattern[str], ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BulkConfigError("fail_emails must be a list of regular expressions")
    try:
        return tuple(re.compile(item, re.IGNORECASE) for item in value)
    except re.error as exc:
        raise BulkConfigError(f"fail_emails: {exc}") from exc


def _number(name: str, value: Any, *, minimum: float, exclusive: bool = False) -> float:
    # json.loads accepts NaN and Infinity, which would slip past the range check below.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BulkConfigError(f"{name} must be a finite number")
    if value < minimum or (exclusive and value == minimum):
        raise BulkConfigError(f"{name} must be {'>' if exclusive else '>='} {minimum:g}")
    return float(value)
