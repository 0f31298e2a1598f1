"""The per-account arrival window behind ActiveCampaign's 5 requests/second limit.

Arrivals are counted when a request has been read, before any simulated latency: the real
limit counts requests as they reach the server, so a client that paces on *answers* rather
than on *sends* overruns it. Requests answered 429 are not recorded, so a client that retries
too early is refused again but does not push its own window further out.

Times are plain floats in seconds (the caller passes a monotonic clock), so the policy is
tested with numbers rather than sleeps.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["Admission", "ArrivalWindow", "limit_header", "retry_after_header"]


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    remaining: int  # further requests allowed in the current window
    retry_after_s: float  # seconds until a slot frees; 0.0 when admitted


class ArrivalWindow:
    """Sliding window of `window_s` seconds allowing `limit` arrivals; 0 disables the limit.

    Arrivals are still recorded when the limit is disabled, so `peak()` (the most arrivals
    seen in any window) is available either way.
    """

    def __init__(self, limit: float, *, window_s: float = 1.0) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("limit must be >= 0 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._arrivals: deque[float] = deque()
        self._peak = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def try_admit(self, now_s: float) -> Admission:
        """Record an arrival at `now_s` unless the window is full (then record nothing)."""
        with self._lock:
            now_s = self._expire(now_s)
            if self.enabled and len(self._arrivals) >= self.limit:
                return Admission(False, 0, self._retry_after_s(now_s))
            return self._append(now_s)

    def record(self, now_s: float) -> Admission:
        """Record an arrival that is answered anyway (an injected fault), full or not."""
        with self._lock:
            return self._append(self._expire(now_s))

    def peak(self) -> int:
        """The most recorded arrivals that fell within one window, since the last reset."""
        with self._lock:
            return self._peak

    def reset(self) -> None:
        with self._lock:
            self._arrivals.clear()
            self._peak = 0

    def _expire(self, now_s: float) -> float:
        # Threads take their timestamps before they get the lock, so they can come in a few
        # microseconds out of order; clamping keeps the deque sorted, which trimming relies on.
        if self._arrivals and now_s < self._arrivals[-1]:
            now_s = self._arrivals[-1]
        cutoff = now_s - self.window_s
        while self._arrivals and self._arrivals[0] <= cutoff:
            self._arrivals.popleft()
        return now_s

    def _append(self, now_s: float) -> Admission:
        self._arrivals.append(now_s)
        self._peak = max(self._peak, len(self._arrivals))
        remaining = max(0, math.ceil(self.limit) - len(self._arrivals)) if self.enabled else 0
        return Admission(True, remaining, 0.0)

    def _retry_after_s(self, now_s: float) -> float:
        # A slot frees when enough of the oldest arrivals have left the window for the count
        # to drop below the limit; record() can push the count past it, hence the index.
        index = len(self._arrivals) - math.ceil(self.limit)
        return max(0.0, self._arrivals[index] + self.window_s - now_s)


def retry_after_header(retry_after_s: float) -> str:
    """`Retry-After` in whole seconds, rounded up and at least 1 (0 would invite a spin)."""
    return str(max(1, math.ceil(retry_after_s)))


def limit_header(limit: float) -> str:
    """`RateLimit-Limit` value: "5" for 5.0, "2.5" for 2.5."""
    return f"{limit:g}"
