"""The account-wide rate limiter, shared by every worker process on every host.

ActiveCampaign allows 5 requests per second per account and counts requests as they
arrive. The limiter is a sliding log in Redis, driven by the Redis server's clock, with a
window slightly longer than a second (``margin_ms``) so that network jitter cannot push six
requests into one second at the server. A 429 pauses every worker for its Retry-After.

Why not the ``limits`` library: its Redis moving window stamps entries with each client's
``time.time()``, so two hosts with skewed clocks overrun the limit, and its windows are whole
seconds, which leaves no room for the jitter margin. docs/decisions.md has the measurement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker._lua import load_script
from worker.keys import Keys

__all__ = ["Acquired", "RateLimiter", "window_for"]


def window_for(rate_per_s: float, *, margin_ms: int) -> tuple[int, int]:
    """(requests, window_ms) for a rate: 5/s -> (5, 1000 + margin). Slow rates widen the window."""
    window_s = max(1.0, 1.0 / rate_per_s)
    return max(1, math.floor(rate_per_s * window_s + 1e-9)), int(window_s * 1000) + margin_ms


@dataclass(frozen=True, slots=True)
class Acquired:
    """A slot was taken (``ok``), or not: then ``retry_in_s`` says when one may be free."""

    ok: bool
    waited_s: float
    retry_in_s: float = 0.0


class RateLimiter:
    """Hands out send slots: ``acquire()`` waits for one, ``pause()`` obeys a 429."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        rate_per_s: float,
        margin_ms: int = 50,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        window: tuple[int, int] | None = None,
        log_key: str | None = None,
        pause_key: str | None = None,
    ) -> None:
        """``window`` (requests, ms) and the two keys override the account's 5/s limiter:
        bulk import's 100 requests a minute is one (``RateLimiter.bulk``)."""
        self.keys = keys
        self.limit, self.window_ms = window or window_for(rate_per_s, margin_ms=margin_ms)
        self.log_key = log_key or keys.rate_log
        self.pause_key = pause_key or keys.rate_pause
        self._sleep = sleep
        self._monotonic = monotonic
        self._take = load_script(client, "ratelimit")
        self._pause = load_script(client, "pause")

    @classmethod
    def bulk(cls, client: redis.Redis, keys: Keys, *, per_minute: float) -> RateLimiter:
        """Bulk import's own limiter: ``per_minute`` requests in any 61 s (a 1 s margin)."""
        return cls(
            client,
            keys,
            rate_per_s=per_minute / 60.0,
            window=(max(1, int(per_minute)), 61_000),
            log_key=keys.bulk_rate_log,
            pause_key=keys.bulk_pause,
        )

    def try_acquire(self) -> float:
        """Take a slot now if one is free. Returns 0.0 on success, else seconds to wait."""
        wait_ms = int(
            self._take(keys=[self.log_key, self.pause_key], args=[self.limit, self.window_ms])
        )
        return wait_ms / 1000.0

    def acquire(self, *, max_wait_s: float) -> Acquired:
        """Wait for a slot, at most ``max_wait_s`` seconds; give up at once on a longer wait."""
        start = self._monotonic()
        while True:
            wait_s = self.try_acquire()
            waited = self._monotonic() - start
            if wait_s <= 0:
                return Acquired(True, waited)
            if waited + wait_s > max_wait_s:
                return Acquired(False, waited, retry_in_s=wait_s)
            # A millisecond of slack: the script's clock has ms resolution.
            self._sleep(wait_s + 0.001)

    def pause(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` from now (never shortens a longer pause)."""
        self._pause(keys=[self.pause_key], args=[max(1, math.ceil(seconds * 1000))])

    def paused_for_s(self, client: redis.Redis) -> float:
        """Seconds left of the current pause (0 when none), by the Redis clock."""
        pipe: Any = client.pipeline(transaction=False)  # redis-py types replies as Awaitable | Any
        until, (seconds, micros) = pipe.get(self.pause_key).time().execute()
        if until is None:
            return 0.0
        now_ms = seconds * 1000 + micros // 1000
        return max(0.0, (int(until) - int(now_ms)) / 1000.0)
