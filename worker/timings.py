"""Every timing that correctness depends on, in one frozen object that checks its invariants.

Leases, the pump's window and lock, the claim horizon and the task time limit
used to live in five modules; a change to one could silently break a rule that another
relied on. Here each is derived from the settings once, and ``Timings.check()`` refuses a
combination that would break one of these rules:

- **At most one request per email in flight.** A claim's lease runs ``lease_s`` from the
  moment a sync begins (Redis clock). Celery kills a sync task ``task_time_limit_s`` after
  it started, which is before it began, so the kill always lands ``kill_margin_s`` before
  the lease runs out and the email can be claimed again.
- **A normal sync finishes inside its time limit.** The limiter wait, the request (requests
  applies its timeout to the connect and to each read, hence two of them) and the
  bookkeeping after it all fit: ``limiter_max_wait_s + 2 x http_timeout_s + bookkeeping_s
  ≤ task_time_limit_s``.
- **One pump at a time.** The pump renews its lock every cycle (a cycle is far shorter than
  a window), and the lock outlives the window (``pump_lock_ttl_s > pump_window_s``): a pump
  whose worker died is replaced once its lock runs out, within ``pump_lock_ttl_s +
  pump_retry_s``.
- **No live consumer is robbed.** Stream entries are reclaimed from a consumer only after
  they were idle longer than a pump cycle can last (``reclaim_idle_s > pump_lock_ttl_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from worker.errors import ConfigError

__all__ = ["Timings"]


@dataclass(frozen=True, slots=True)
class Timings:
    """Durations in seconds. Build with ``Timings.derive()``; it runs ``check()``."""

    http_timeout_s: float
    lease_s: float
    pump_window_s: float
    reclaim_idle_s: float
    # Time kept inside a task's limit for finish_sync and logging after the response.
    bookkeeping_s: float = 3.0
    # Time between the task's hard kill and its lease running out: clocks differ (the
    # lease is on the Redis clock) and the kill itself takes a moment.
    kill_margin_s: float = 3.0
    # How far ahead the pump leases emails: enough to keep the rate budget busy, few
    # enough that a lease is not spent waiting for a limiter slot.
    claim_horizon_s: float = 2.0
    reclaim_every_s: float = 5.0
    # How often a worker whose pump thread does not hold the lock tries to take it.
    pump_retry_s: float = 0.5
    consumer_idle_limit_s: float = 3600.0

    @classmethod
    def derive(
        cls,
        *,
        http_timeout_s: float,
        lease_s: float | None = None,
        pump_window_s: float = 5.0,
        reclaim_idle_s: float = 15.0,
    ) -> Timings:
        """The timings for these settings; ``lease_s`` defaults to 2 x timeout + 30 s."""
        timings = cls(
            http_timeout_s=http_timeout_s,
            lease_s=2 * http_timeout_s + 30.0 if lease_s is None else lease_s,
            pump_window_s=pump_window_s,
            reclaim_idle_s=reclaim_idle_s,
        )
        timings.check()
        return timings

    @property
    def pump_lock_ttl_s(self) -> float:
        """The pump lock's TTL, renewed every cycle: twice the window."""
        return 2 * self.pump_window_s

    @property
    def task_time_limit_s(self) -> float:
        """Celery's hard time limit for a sync task: it dies before its lease runs out."""
        return self.lease_s - self.kill_margin_s

    @property
    def limiter_max_wait_s(self) -> float:
        """The longest a sync waits for a rate-limiter slot before it defers the email."""
        return self.task_time_limit_s - 2 * self.http_timeout_s - self.bookkeeping_s

    def max_leases(self, rate_per_s: float) -> int:
        """How many emails may be leased at once: the rate budget over the claim horizon."""
        return max(1, math.ceil(rate_per_s * self.claim_horizon_s))

    def check(self) -> None:
        """Raise ConfigError, naming the variable to change, if an invariant does not hold."""
        if self.limiter_max_wait_s < 1.0 - 1e-9:  # float sums of exact minimums
            needed = 2 * self.http_timeout_s + self.bookkeeping_s + self.kill_margin_s + 1.0
            raise ConfigError(
                "CONTACT_SYNC_LEASE_S",
                f"must be at least {needed:g} s with CONTACT_SYNC_HTTP_TIMEOUT_S="
                f"{self.http_timeout_s:g} (2 x timeout + {self.bookkeeping_s:g} s bookkeeping "
                f"+ {self.kill_margin_s:g} s kill margin + 1 s of limiter wait), "
                f"got {self.lease_s:g}",
            )
        if self.task_time_limit_s >= self.lease_s:  # guards a future change to the margins
            raise ConfigError("CONTACT_SYNC_LEASE_S", "the task time limit must end before it")
        if self.pump_lock_ttl_s <= self.pump_window_s:
            raise ConfigError("CONTACT_SYNC_PUMP_WINDOW_S", "the pump lock must outlive it")
        if self.reclaim_idle_s <= self.pump_lock_ttl_s:
            raise ConfigError(
                "CONTACT_SYNC_RECLAIM_IDLE_S",
                f"must be longer than a pump cycle can last (the pump lock's TTL, "
                f"2 x CONTACT_SYNC_PUMP_WINDOW_S = {self.pump_lock_ttl_s:g} s), "
                f"got {self.reclaim_idle_s:g}",
            )
