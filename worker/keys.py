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
    def lease_tokens(self) -> str:
        """HASH email -> the token of its current lease; only its holder may sync it."""
        return f"{self.prefix}:lease-tokens"

    @property
    def metrics(self) -> str:
        """HASH of what only the metrics exporter reads: API latency histogram, limiter wait."""
        return f"{self.prefix}:metrics"

    @property
    def pump_lock(self) -> str:
        """STRING: the running pump's lock token (see pump_lock)."""
        return f"{self.prefix}:pump:lock"

    @property
    def rate_log(self) -> str:
        """LIST of the send times (ms) of the most recent requests, newest first."""
        return f"{self.prefix}:ratelimit:log"

    @property
    def rate_pause(self) -> str:
        """STRING: no request may leave before this time (ms, Redis clock)."""
        return f"{self.prefix}:ratelimit:pause"

    def catalog(self, kind: str) -> str:
        """HASH: one ActiveCampaign catalog (fields, lists, tags or accounts): worker/catalog.py."""
        return f"{self.prefix}:catalog:{kind}"

    def catalog_fresh(self, kind: str) -> str:
        """STRING that lives for the refresh interval after a catalog was read from the API."""
        return f"{self.prefix}:catalog:{kind}:fresh"

    def contact(self, email: str) -> str:
        """HASH with one contact's pending, in-flight and confirmed state."""
        return f"{self.prefix}:contact:{email}"

    def all_keys_pattern(self) -> str:
        return f"{self.prefix}:*"
