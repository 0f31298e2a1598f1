"""Injected failures: what a flaky network or a bad day at ActiveCampaign looks like.

Settings (all JSON-settable through `POST /_emulator/faults`, merged key by key; a key set
to null switches that fault off):

- ``latency_ms``: sleep before answering every API request.
- ``error_rate``: fraction of API requests answered 503, drawn from a seeded RNG.
- ``outage``: ``{"mode": "503" | "hang" | "reset", "seconds": N | null}`` from now on;
  "hang" waits ``hang_s`` (default 30 s) and then answers 503 and closes.
- ``force_status``: ``{"status": 400..599, "count": N | null, "retry_after": "2" | null}``;
  the next N API requests (null: all) get that status. ``count`` defaults to 1.
- ``reject_emails``: regexes (searched, case-insensitive); a sync for a matching email gets
  the documented 422.
- ``delay_after_store_ms``: hold every successful contact/sync answer this long after the
  contact was stored (and the request logged as 201). A client killed meanwhile has had its
  change accepted without ever hearing so: the "crash after the API accepted" case.

When several apply, the first of force_status, outage, error_rate wins: force_status is
counted, so a test that forces N answers gets exactly N whatever else is set.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["DEFAULT_HANG_S", "Fault", "FaultConfigError", "Faults"]

DEFAULT_HANG_S = 30.0  # longer than any sane client read timeout
OUTAGE_MODES = ("503", "hang", "reset")
_KEYS = {
    "latency_ms",
    "error_rate",
    "hang_s",
    "outage",
    "force_status",
    "reject_emails",
    "delay_after_store_ms",
}


class FaultConfigError(ValueError):
    """A fault setting that cannot be applied; the admin API answers 400 with the message."""


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do instead of answering normally."""

    kind: Literal["status", "hang", "reset"]
    status: int = 503
    retry_after: str | None = None  # Retry-After header value, sent as given


@dataclass(slots=True)
class _Settings:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    hang_s: float = DEFAULT_HANG_S
    outage_mode: str | None = None
    outage_seconds: float | None = None
    outage_until_s: float | None = None  # monotonic; None with a mode means "until cleared"
    force_status: int | None = None
    force_remaining: int | None = None  # None means "every request"
    force_retry_after: str | None = None
    reject_emails: tuple[re.Pattern[str], ...] = field(default=())
    delay_after_store_ms: float = 0.0


class Faults:
    """Thread-safe fault settings. `clock` is monotonic seconds, injectable for tests."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._initial = _Settings()
        _apply(self._initial, {"latency_ms": latency_ms, "error_rate": error_rate}, clock())
        self._settings = replace(self._initial)
        self._seed = seed
        self._rng = random.Random(seed)
        self._clock = clock
        self._lock = threading.Lock()

    def update(self, changes: Mapping[str, Any]) -> None:
        """Merge `changes` (the admin JSON); `"clear": true` first switches everything off.

        Raises FaultConfigError and leaves the settings untouched when any key is invalid.
        """
        changes = dict(changes)
        clear = changes.pop("clear", False)
        if not isinstance(clear, bool):
            raise FaultConfigError("clear must be true or false")
        unknown = sorted(set(changes) - _KEYS)
        if unknown:
            raise FaultConfigError(f"unknown fault settings: {', '.join(unknown)}")
        with self._lock:
            candidate = _Settings() if clear else replace(self._settings)
            _apply(candidate, changes, self._clock())
            self._settings = candidate

    def clear(self) -> None:
        """Switch every fault off, including construction-time latency and error rate."""
        with self._lock:
            self._settings = _Settings()

    def reset(self) -> None:
        """Back to the constructed settings, with the RNG reseeded."""
        with self._lock:
            self._settings = replace(self._initial)
            self._rng = random.Random(self._seed)

    def latency_s(self) -> float:
        with self._lock:
            return self._settings.latency_ms / 1000.0

    def hang_s(self) -> float:
        with self._lock:
            return self._settings.hang_s

    def delay_after_store_s(self) -> float:
        with self._lock:
            return self._settings.delay_after_store_ms / 1000.0

    def decide(self, now_s: float) -> Fault | None:
        """The fault for an API request that arrived at monotonic `now_s`, if any."""
        with self._lock:
            s = self._settings
            if s.force_status is not None:
                fault = Fault("status", s.force_status, s.force_retry_after)
                if s.force_remaining is not None:
                    s.force_remaining -= 1
                    if s.force_remaining <= 0:
                        s.force_status = s.force_remaining = s.force_retry_after = None
                return fault
            if s.outage_mode is not None:
                if s.outage_until_s is None or now_s < s.outage_until_s:
                    if s.outage_mode == "503":
                        return Fault("status", 503)
                    return Fault("hang" if s.outage_mode == "hang" else "reset")
                s.outage_mode = s.outage_seconds = s.outage_until_s = None
            # Draw only when a rate is set, so a seed gives the same sequence of failures
            # whatever other faults were used before.
            if s.error_rate > 0 and self._rng.random() < s.error_rate:
                return Fault("status", 503)
            return None

    def rejects_email(self, email: str) -> bool:
        with self._lock:
            patterns = self._settings.reject_emails
        return any(pattern.search(email) for pattern in patterns)

    def snapshot(self) -> dict[str, Any]:
        """The current settings as JSON (what `GET /_emulator/faults` answers)."""
        with self._lock:
            s = self._settings
            outage = None
            if s.outage_mode is not None:
                outage = {"mode": s.outage_mode, "seconds": s.outage_seconds}
            force = None
            if s.force_status is not None:
                force = {
                    "status": s.force_status,
                    "count": s.force_remaining,
                    "retry_after": s.force_retry_after,
                }
            return {
                "latency_ms": s.latency_ms,
                "error_rate": s.error_rate,
                "hang_s": s.hang_s,
                "outage": outage,
                "force_status": force,
                "reject_emails": [pattern.pattern for pattern in s.reject_emails],
                "delay_after_store_ms": s.delay_after_store_ms,
            }


def _apply(s: _Settings, changes: Mapping[str, Any], now_s: float) -> None:
    defaults = _Settings()
    for key, value in changes.items():
        if key == "latency_ms":
            s.latency_ms = defaults.latency_ms if value is None else _number(key, value, 0, None)
        elif key == "error_rate":
            s.error_rate = defaults.error_rate if value is None else _number(key, value, 0, 1)
        elif key == "hang_s":
            s.hang_s = defaults.hang_s if value is None else _number(key, value, 0, None)
        elif key == "outage":
            _apply_outage(s, value, now_s)
        elif key == "force_status":
            _apply_force_status(s, value)
        elif key == "reject_emails":
            s.reject_emails = _patterns(value)
        elif key == "delay_after_store_ms":
            s.delay_after_store_ms = (
                defaults.delay_after_store_ms if value is None else _number(key, value, 0, None)
            )


def _apply_outage(s: _Settings, value: Any, now_s: float) -> None:
    if value is None:
        s.outage_mode = s.outage_seconds = s.outage_until_s = None
        return
    if not isinstance(value, dict) or value.get("mode") not in OUTAGE_MODES:
        raise FaultConfigError('outage must be {"mode": "503" | "hang" | "reset", "seconds": N}')
    seconds = value.get("seconds")
    s.outage_mode = str(value["mode"])
    s.outage_seconds = None if seconds is None else _number("outage.seconds", seconds, 0, None)
    s.outage_until_s = None if s.outage_seconds is None else now_s + s.outage_seconds


def _apply_force_status(s: _Settings, value: Any) -> None:
    if value is None:
        s.force_status = s.force_remaining = s.force_retry_after = None
        return
    if not isinstance(value, dict):
        raise FaultConfigError('force_status must be {"status": 503, "count": N | null}')
    status = value.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise FaultConfigError("force_status.status must be an integer from 400 to 599")
    count = value.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise FaultConfigError("force_status.count must be a positive integer or null")
    # A 429 without Retry-After is legal but unusual; default to what the real API sends,
    # and let an explicit null test a client against the bare status.
    retry_after = value.get("retry_after", "1" if status == 429 else None)
    if retry_after is not None and not isinstance(retry_after, str | int | float):
        raise FaultConfigError("force_status.retry_after must be a string, a number or null")
    s.force_status = status
    s.force_remaining = count
    s.force_retry_after = None if retry_after is None else _header_value(retry_after)


def _header_value(value: str | int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if "\r" in text or "\n" in text:
        raise FaultConfigError("force_status.retry_after must be one line")
    return text


def _patterns(value: Any) -> tuple[re.Pattern[str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FaultConfigError("reject_emails must be a list of regular expressions")
    try:
        return tuple(re.compile(item, re.IGNORECASE) for item in value)
    except re.error as exc:
        raise FaultConfigError(f"reject_emails: {exc}") from exc


def _number(name: str, value: Any, minimum: float, maximum: float | None) -> float:
    # json.loads accepts NaN and Infinity, which would slip past the range check below.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise FaultConfigError(f"{name} must be a finite number")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum:g}"
        raise FaultConfigError(f"{name} must be >= {minimum:g}{upper}")
    return float(value)
