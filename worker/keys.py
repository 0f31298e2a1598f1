"""Every Redis key name contact-sync uses, built in exactly one place.

For Redis Cluster, set the prefix to a hash tag such as ``{contact-sync}``: every key
then starts with it and lands in one slot, so the multi-key Lua scripts stay legal.

Each destination (worker/destinations.py) has its own keys under ``{prefix}:dest:{name}``,
except ``default``, whose keys are the ones a single-account deployment always had. The
events stream, the pump's lock and the claim counter are shared by all destinations;
events that name no known destination are dead-lettered in ``default``'s stream.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONSUMER_GROUP", "Keys"]

CONSUMER_GROUP = "workers"


DEFAULT_DESTINATION = "default"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "contact-sync"
    destination: str = DEFAULT_DESTINATION

    @property
    def scope(self) -> str:
        """What this destination's keys start with."""
        if self.destination == DEFAULT_DESTINATION:
            return self.prefix
        return f"{self.prefix}:dest:{self.destination}"

    def for_destination(self, destination: str) -> Keys:
        return Keys(self.prefix, destination)

    @property
    def events(self) -> str:
        """Stream of incoming events (the producers' XADD target); one for all destinations."""
        return f"{self.prefix}:events"

    @property
    def dead(self) -> str:
        """Stream of this destination's dead letters."""
        return f"{self.scope}:dead"

    @property
    def due(self) -> str:
        """ZSET email -> when its next sync may start (ms, Redis clock)."""
        return f"{self.scope}:due"

    @property
    def leases(self) -> str:
        """ZSET email -> when the current claim on it runs out (ms, Redis clock)."""
        return f"{self.scope}:leases"

    @property
    def stats(self) -> str:
        """HASH of monotonically growing counters (ingested, invalid, synced, ...)."""
        return f"{self.scope}:stats"

    @property
    def claims(self) -> str:
        """STRING counting every claim ever made; part of each lease token, so none repeats."""
        return f"{self.prefix}:claims"

    @property
    def lease_tokens(self) -> str:
        """HASH email -> the token of its current lease; only its holder may sync it."""
        return f"{self.scope}:lease-tokens"

    @property
    def failing(self) -> str:
        """STRING that lives for a while after a timeout, a 5xx or a 429: the pump then leases this
        destination one email at a time, so a stuck account cannot hold every pool process."""
        return f"{self.scope}:failing"

    @property
    def probe(self) -> str:
        """STRING held by the one sync that may reach a failing destination (isolation.py)."""
        return f"{self.scope}:failing:probe"

    @property
    def metrics(self) -> str:
        """HASH of what only the metrics exporter reads: API latency histogram, limiter wait."""
        return f"{self.scope}:metrics"

    @property
    def pump_lock(self) -> str:
        """STRING: the running pump's lock token (see pump_lock)."""
        return f"{self.prefix}:pump:lock"

    @property
    def bulk_mode(self) -> str:
        """STRING set while the due backlog drains through bulk import (see bulk_claim.lua)."""
        return f"{self.scope}:bulk:mode"

    @property
    def bulk_batches(self) -> str:
        """ZSET batch id -> when its next step is due (ms); the pump hands due steps out."""
        return f"{self.scope}:bulk:batches"

    @property
    def bulk_leases(self) -> str:
        """ZSET email -> when a bulk batch's lease on it runs out (ms); tokens as for syncs."""
        return f"{self.scope}:bulk:leases"

    def bulk_batch(self, batch_id: str) -> str:
        """HASH of one batch: its state, its emails and their lease tokens, its body."""
        return f"{self.scope}:bulk:batch:{batch_id}"

    @property
    def bulk_sync_only(self) -> str:
        """ZSET email -> until when (ms) it goes through /contact/sync, not bulk import."""
        return f"{self.scope}:bulk:sync-only"

    @property
    def bulk_rate_log(self) -> str:
        """LIST of the send times (ms) of the most recent bulk_import requests."""
        return f"{self.scope}:bulk:ratelimit:log"

    @property
    def bulk_pause(self) -> str:
        """STRING: until when (ms) nobody sends a bulk_import ("Rate limit exceeded.")."""
        return f"{self.scope}:bulk:ratelimit:pause"

    @property
    def rate_log(self) -> str:
        """LIST of the send times (ms) of the most recent requests, newest first."""
        return f"{self.scope}:ratelimit:log"

    @property
    def rate_pause(self) -> str:
        """STRING: no request may leave before this time (ms, Redis clock)."""
        return f"{self.scope}:ratelimit:pause"

    def catalog(self, kind: str) -> str:
        """HASH: one ActiveCampaign catalog (fields, lists, tags or accounts): worker/catalog.py."""
        return f"{self.scope}:catalog:{kind}"

    def catalog_fresh(self, kind: str) -> str:
        """STRING that lives for the refresh interval after a catalog was read from the API."""
        return f"{self.scope}:catalog:{kind}:fresh"

    def contact(self, email: str) -> str:
        """HASH with one contact's pending, in-flight and confirmed state."""
        return f"{self.scope}:contact:{email}"

    def all_keys_pattern(self) -> str:
        return f"{self.prefix}:*"
