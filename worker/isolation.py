"""Isolation between destinations: an account that hangs cannot hold the pool.

A sync that times out, gets a 5xx or a 429 marks its destination failing for a while
(``MergeStore.mark_failing``). While it is failing:
- the pump leases that destination one email at a time (``Pump._claim``);
- of the syncs already queued for it, only one at a time, the probe, may send; the others
  hand their lease back, due again in ``HOLD_S``, with no attempt counted.
So a stuck account holds at most one pool process, across all workers, and the other
destinations keep the rest. A 429 counts too: its pause stops new claims, but the syncs
already queued would each wait it out in a pool process. The first probe that succeeds ends
the failing state. Catalog reads, which the pump makes, fail at once for a failing
destination, and one that times out marks it failing (``worker.runtime.limited_fetch``).

Only with more than one destination: a single account has nothing to be isolated from, and
its syncs then pay for none of this.
"""

from __future__ import annotations

from worker.errors import ApiTransportError
from worker.store import MergeStore

__all__ = ["FAILING_PROBE_S", "HOLD_S", "DestinationFailing", "Gate"]

FAILING_PROBE_S = 15.0  # how long a timeout, a 5xx or a 429 marks the destination failing
HOLD_S = 1.0  # how soon a sync held back from a failing destination is due again


class DestinationFailing(ApiTransportError):
    """A catalog read not attempted: its destination is failing (read in the pump, it would
    make every destination wait for the one that hangs)."""


class Gate:
    """Decides whether one sync may reach its destination now."""

    def __init__(self, store: MergeStore, *, probe_ttl_s: float) -> None:
        self.store = store
        self.probe_ttl_s = probe_ttl_s
        self.probing = False

    def enter(self) -> bool:
        """True if this sync may send: the destination is healthy, or this is its probe."""
        if not self.store.is_failing():
            return True
        self.probing = self.store.take_probe(self.probe_ttl_s)
        return self.probing

    def leave(self, *, succeeded: bool) -> None:
        if self.probing:
            self.store.end_probe(recovered=succeeded)
            self.probing = False
