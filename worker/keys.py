"""Every Redis key name contact-sync uses, built in exactly one place.

For Redis Cluster, set the prefix to a hash tag such as ``{contact-sync}``: every key
then starts with it and lands in one slot, so the multi-key Lua scripts stay legal.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONSUMER_GROUP", "Keys"]

CONSUMER_GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "contact-sync"

    @property
    def events(self) -> str:
        """Stream of incoming events (the producers' XADD target)."""
        return f"{self.prefix}:events"

    @property
    def dead(self) -> str:
        """Stream of dead letters."""
        return f"{self.prefix}:dead"

    @property
    def due(self) -> str:
        """ZSET email -> when its next sync may start (ms, Redis clock)."""
        return f"{self.prefix}:due"

    @property
    def leases(self) -> str:
        """ZSET email -> when the current claim on it runs out (ms, Redis clock)."""
        return f"{self.prefix}:leases"

    @property
    def stats(self) -> str:
        """HASH of monotonically growing counters (ingested, invalid, synced, ...)."""
        return f"{self.prefix}:stats"

    @property
    def claims(self) -> str:
        """STRING counting every claim ever made; part of each lease token, so none repeats."""
        return f"{self.prefix}:claims"

    @property
    def layout(self) -> str:
        """STRING: the contact hash layout the hashes are in (see MergeStore.migrate_layout)."""
        return f"{self.prefix}:layout"

    @property
    def metrics(self) -> str:
        """HASH of what only the metrics exporter reads: API latency histogram, limiter wait."""
        return f"{self.prefix}:metrics"

    @property
    def pump_lock(self) -> str:
        return f"{self.prefix}:pump:lock"

    @property
    def pump_trigger(self) -> str:
        return f"{self.prefix}:pump:trigger"

    @property
    def rate_log(self) -> str:
        """LIST of the send times (ms) of the most recent requests, newest first."""
        return f"{self.prefix}:ratelimit:log"

    @property
    def rate_pause(self) -> str:
        """STRING: no request may leave before this time (ms, Redis clock)."""
        return f"{self.prefix}:ratelimit:pause"

    def contact(self, email: str) -> str:
        """HASH with one contact's pending, in-flight and confirmed state."""
        return f"{self.prefix}:contact:{email}"

    def all_keys_pattern(self) -> str:
        return f"{self.prefix}:*"
