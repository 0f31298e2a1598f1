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
    def bulk_mode(self) -> str:
        """STRING set while the due backlog drains through bulk import (see bulk_claim.lua)."""
        return f"{self.prefix}:bulk:mode"

    @property
    def bulk_batches(self) -> str:
        """ZSET batch id -> when its next step is due (ms); the pump hands due steps out."""
        return f"{self.prefix}:bulk:batches"

    @property
    def bulk_leases(self) -> str:
        """ZSET email -> when a bulk batch's lease on it runs out (ms); tokens as for syncs."""
        return f"{self.prefix}:bulk:leases"

    def bulk_batch(self, batch_id: str) -> str:
        """HASH of one batch: its state, its emails and their lease tokens, its body."""
        return f"{self.prefix}:bulk:batch:{batch_id}"

    @property
    def bulk_sync_only(self) -> str:
        """ZSET email -> until when (ms) it goes through /contact/sync, not bulk import."""
        return f"{self.prefix}:bulk:sync-only"

    @property
    def bulk_rate_log(self) -> str:
        """LIST of the send times (ms) of the most recent bulk_import requests."""
        return f"{self.prefix}:bulk:ratelimit:log"

    @property
    def bulk_pause(self) -> str:
        """STRING: until when (ms) nobody sends a bulk_import ("Rate limit exceeded.")."""
        return f"{self.prefix}:bulk:ratelimit:pause"

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
