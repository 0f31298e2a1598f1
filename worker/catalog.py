"""Catalogs: ActiveCampaign's fields, lists, tags and accounts, cached in Redis for all workers.

Events name a field by id, ``%PERSTAG%`` or title, a list by id or name, a tag or an account
by name; these resolve through the catalogs. Reading one costs API requests (every page,
each through the shared rate limiter), so:

- the cache lives in Redis, one hash per kind, shared by every worker process and host;
- a miss refreshes that kind at most once per ``refresh_interval_s`` (60 s) across all
  workers (a ``SET NX PX`` key), so a flood of unknown references costs one read a minute,
  not one per event; a refresh replaces the hash atomically;
- names, perstags and titles match case-insensitively, as in ActiveCampaign;
- a tag or account that was just created is added with ``remember()``, without a refresh.

Hash fields: ``id:<id>`` holds the item (JSON for fields, the name otherwise), and
``name:<lower-case name>`` (``perstag:``/``title:`` for fields) holds its id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import redis

from worker.errors import ApiTransportError
from worker.field_values import FieldDefinition
from worker.keys import Keys
from worker.redis_client import text

__all__ = ["KINDS", "Catalog", "CatalogUnavailable", "Kind", "is_id"]

# After a failed read, misses fail fast for this long instead of asking the API each time.
_RETRY_AFTER_FAILURE_MS = 5000


class CatalogUnavailable(ApiTransportError):
    """A catalog could not be read lately (the API is down, or the token is wrong)."""


Kind = Literal["fields", "lists", "tags", "accounts"]
KINDS: tuple[Kind, ...] = ("fields", "lists", "tags", "accounts")

# Replace a catalog hash with a freshly built one in one step.
_REPLACE = """
-- KEYS[1] catalog HASH   KEYS[2] the new one, built beside it. Renames, or deletes both.
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.call('RENAME', KEYS[2], KEYS[1]) end
return redis.call('DEL', KEYS[1])
"""


class Catalog:
    """Resolves references through Redis; ``fetch(kind)`` reads every page from the API."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        fetch: Callable[[Kind], Iterable[Mapping[str, Any]]],
        refresh_interval_s: float = 60.0,
        memo_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis: Any = client  # redis-py types replies as Awaitable | Any
        self.keys = keys
        self.fetch = fetch
        self.refresh_interval_ms = int(refresh_interval_s * 1000)
        self._replace = client.register_script(_REPLACE)
        # The pump resolves every reference of every event; a field named 100,000 times in a
        # backlog is one Redis read a second instead of 100,000 (make bench: ingest).
        self._memo: dict[str, tuple[float, str]] = {}
        self._memo_s = memo_s
        self._monotonic = monotonic

    # -- lookups --------------------------------------------------------------------------

    def field(self, ref: str) -> FieldDefinition | None:
        """The field a reference names: an id, ``%PERSTAG%`` or a title; None if unknown."""
        ref = ref.strip()
        if is_id(ref):
            index = f"id:{int(ref)}"
        elif len(ref) > 2 and ref.startswith("%") and ref.endswith("%"):
            index = f"perstag:{ref[1:-1].casefold()}"
        else:
            index = f"title:{ref.casefold()}"
        raw = self._lookup("fields", index, follow=not index.startswith("id:"))
        return None if raw is None else _field_from_json(raw)

    def list_id(self, ref: str) -> str | None:
        """A list's id from its id or its name; None if unknown."""
        ref = ref.strip()
        if is_id(ref):
            return str(int(ref)) if self._lookup("lists", f"id:{int(ref)}") is not None else None
        return self._lookup("lists", f"name:{ref.casefold()}")

    def tag_id(self, name: str) -> str | None:
        return self._lookup("tags", f"name:{name.strip().casefold()}")

    def account_id(self, name: str) -> str | None:
        return self._lookup("accounts", f"name:{name.strip().casefold()}")

    def remember(self, kind: Kind, item_id: str, name: str) -> None:
        """Add a tag or account that was just created (or found by a create's refusal)."""
        self._memo.clear()
        self.redis.hset(
            self.keys.catalog(kind),
            mapping={f"id:{item_id}": name, f"name:{name.strip().casefold()}": item_id},
        )

    # -- refresh --------------------------------------------------------------------------

    def refresh(self, kind: Kind, *, force: bool = False) -> bool:
        """Read ``kind`` from the API into Redis, unless another worker did in the interval.

        Returns True if this call read it. ``force`` skips the interval check.
        """
        fresh = self.keys.catalog_fresh(kind)
        failed = fresh + ":failed"
        if not force and self.redis.exists(failed):
            raise CatalogUnavailable(f"the {kind} catalog could not be read moments ago")
        if not self.redis.set(fresh, "1", nx=not force, px=self.refresh_interval_ms):
            return False
        building = self.keys.catalog(kind) + ":building"
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(building)
        try:
            for item in self.fetch(kind):
                pipe.hset(building, mapping=_index(kind, item))
                if len(pipe) >= 500:
                    pipe.execute()
        except BaseException:
            # Not read after all: the next miss must try again, not trust an old catalog
            # for a minute (and dead-letter references that would have resolved).
            self.redis.delete(fresh, building)
            self.redis.set(failed, "1", px=_RETRY_AFTER_FAILURE_MS)
            raise
        pipe.execute()
        self._replace(keys=[self.keys.catalog(kind), building])
        return True

    def _lookup(self, kind: Kind, index: str, *, follow: bool = False) -> str | None:
        memo_key = f"{kind}\0{index}"
        now = self._monotonic()
        memo = self._memo.get(memo_key)
        if memo is not None and now - memo[0] < self._memo_s:
            return memo[1]
        found = self._get(kind, index, follow=follow)
        if found is None and self.refresh(kind):
            found = self._get(kind, index, follow=follow)
        if found is not None:  # a miss is asked again: the item may be created any moment
            if len(self._memo) >= 10_000:
                self._memo.clear()
            self._memo[memo_key] = (now, found)
        return found

    def _get(self, kind: Kind, index: str, *, follow: bool) -> str | None:
        key = self.keys.catalog(kind)
        value = self.redis.hget(key, index)
        if value is not None and follow:
            value = self.redis.hget(key, f"id:{text(value)}")
        return None if value is None else text(value)


def is_id(ref: str) -> bool:
    """True for a reference that is an id (ASCII digits)."""
    # ASCII only, as the schema reads ids: "٣" is a title there, so it is one here too.
    return ref.isascii() and ref.isdigit()


def _index(kind: Kind, item: Mapping[str, Any]) -> dict[str, str]:
    item_id = str(item["id"])
    if kind == "fields":
        title = str(item.get("title") or "")
        perstag = str(item.get("perstag") or "")
        definition = {
            "id": item_id,
            "title": title,
            "perstag": perstag,
            "type": str(item.get("type") or "text"),
            "options": [str(option) for option in item.get("options") or ()],
        }
        entries = {f"id:{item_id}": json.dumps(definition, ensure_ascii=False)}
        if perstag:
            entries[f"perstag:{perstag.casefold()}"] = item_id
        if title:
            entries[f"title:{title.casefold()}"] = item_id
        return entries
    name = str(item.get("name") or item.get("tag") or "")
    return {f"id:{item_id}": name, f"name:{name.casefold()}": item_id}


def _field_from_json(raw: str) -> FieldDefinition:
    data = json.loads(raw)
    return FieldDefinition(
        id=data["id"],
        title=data["title"],
        perstag=data["perstag"],
        type=data["type"],
        options=tuple(data["options"]),
    )
