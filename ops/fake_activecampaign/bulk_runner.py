"""`BulkImport`: bulk import's parts wired together, and the thread that works its queue.

The thread wakes every TICK_S, adds `elapsed * speed_per_s` to an allowance and processes
that many whole contacts (`contacts_due`). The allowance is dropped while paused or idle,
so a pause or a quiet spell never turns into a burst, and it is capped per step, so a speed
the machine cannot reach makes the importer run flat out instead of banking work.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from fake_activecampaign.bulk_limits import BulkLimits
from fake_activecampaign.bulk_settings import DEFAULT_SPEED_PER_S, BulkSettings
from fake_activecampaign.bulk_state import BulkBatches
from fake_activecampaign.state import AccountState
from fake_activecampaign.traffic import Traffic

__all__ = ["MAX_CONTACTS_PER_STEP", "TICK_S", "BulkImport", "contacts_due"]

TICK_S = 0.01
MAX_CONTACTS_PER_STEP = 500  # bounds how long one step holds the batches' lock
_JOIN_TIMEOUT_S = 5.0


def contacts_due(
    carry: float, *, elapsed_s: float, speed_per_s: float, max_per_step: int
) -> tuple[int, float]:
    """(whole contacts to process now, allowance carried to the next step).

    `carry` is the fraction (or capped excess) left from the previous step.
    """
    available = carry + max(0.0, elapsed_s) * speed_per_s
    due = min(math.floor(available), max_per_step)
    return due, min(available - due, float(max_per_step))


class BulkImport:
    """Settings, request limits and batches of bulk import, and the thread that applies
    queued contacts to `state` at `settings.speed_per_s()` contacts per second."""

    def __init__(
        self,
        *,
        state: AccountState,
        traffic: Traffic,
        speed_per_s: float = DEFAULT_SPEED_PER_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = BulkSettings(speed_per_s=speed_per_s)
        self.limits = BulkLimits(self.settings)
        self.batches = BulkBatches(
            state=state, traffic=traffic, settings=self.settings, wall_clock=wall_clock
        )
        self._clock = clock
        self._thread: threading.Thread | None = None

    def start(self, stopping: threading.Event) -> None:
        """Work the queue in a daemon thread until `stopping` is set."""
        self._thread = threading.Thread(
            target=self._run, args=(stopping,), name="fake-activecampaign:bulk", daemon=True
        )
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread to end (after `stopping` was set)."""
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT_S)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        """The batch counters plus `rate_limited` (bulk requests refused with the 400)."""
        return {**self.batches.counters(), "rate_limited": self.limits.refused()}

    def reset(self) -> None:
        self.batches.reset()
        self.limits.reset()
        self.settings.reset()

    def _run(self, stopping: threading.Event) -> None:
        carry = 0.0
        last_s = self._clock()
        while not stopping.wait(TICK_S):
            now_s = self._clock()
            elapsed_s, last_s = now_s - last_s, now_s
            if self.settings.paused() or not self.batches.has_work(now_mono_s=now_s):
                carry = 0.0
                continue
            due, carry = contacts_due(
                carry,
                elapsed_s=elapsed_s,
                speed_per_s=self.settings.speed_per_s(),
                max_per_step=MAX_CONTACTS_PER_STEP,
            )
            try:
                self.batches.process(due, now_mono_s=now_s)
            except Exception:
                # A bug in applying one contact must not stop the importer for good.
                traceback.print_exc(file=sys.stderr)
