"""`EmulatorClient`: the admin API from Python, for tests and scripts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

import requests

__all__ = ["EmulatorClient"]

_BULK_FINISHED = frozenset({"completed", "failed", "interrupted"})


class EmulatorClient:
    """Reads what the emulator saw and injects faults. `timeout_s` bounds each call."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._session = requests.Session()

    def contacts(self) -> dict[str, dict[str, Any]]:
        """Every stored contact keyed by lower-cased email.

        Each has fieldValues as {field id: value}, `tags` (names, sorted), `lists`
        ({list id: 1 subscribed or 2 unsubscribed}) and `account` (a name, or None).
        """
        return cast(dict[str, dict[str, Any]], self._call("GET", "contacts"))

    def contact(self, email: str) -> dict[str, Any] | None:
        """One stored contact (any letter case), or None when there is none."""
        response = self._session.get(
            f"{self.base_url}/_emulator/contacts/{quote(email, safe='@')}",
            timeout=self._timeout_s,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    def fields(self) -> list[dict[str, Any]]:
        """Field definitions: id, title, perstag, type, options (values)."""
        return cast(list[dict[str, Any]], self._call("GET", "fields"))

    def define_fields(
        self, fields: Iterable[Mapping[str, Any]], *, replace: bool = False
    ) -> list[dict[str, Any]]:
        """Add field definitions `{"title", "type", "perstag"?, "options"?}`, all or none.

        `replace=True` replaces the whole catalog (ids restart at 1). Returns the added
        definitions; raises ValueError with the emulator's message when one is invalid.
        """
        body = {"fields": [dict(field) for field in fields], "replace": replace}
        return cast(list[dict[str, Any]], self._call("POST", "fields", body))

    def define_field(
        self,
        title: str,
        *,
        type: str = "text",
        perstag: str | None = None,
        options: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Add one field; the perstag defaults to the title in capitals ("SHIRT_SIZE")."""
        field: dict[str, Any] = {"title": title, "type": type, "options": list(options)}
        if perstag is not None:
            field["perstag"] = perstag
        return self.define_fields([field])[0]

    def tags(self) -> list[dict[str, Any]]:
        """Tag definitions: id, tag, tagType, description."""
        return cast(list[dict[str, Any]], self._call("GET", "tags"))

    def define_tags(self, *names: str) -> list[dict[str, Any]]:
        """Create contact tags without an API request; raises ValueError on a duplicate."""
        return cast(list[dict[str, Any]], self._call("POST", "tags", {"tags": list(names)}))

    def lists(self) -> list[dict[str, Any]]:
        """List definitions: id, name, stringid."""
        return cast(list[dict[str, Any]], self._call("GET", "lists"))

    def define_lists(self, *names: str) -> list[dict[str, Any]]:
        """Create lists (the API cannot); raises ValueError on a duplicate name."""
        return cast(list[dict[str, Any]], self._call("POST", "lists", {"lists": list(names)}))

    def accounts(self) -> list[dict[str, Any]]:
        """Account definitions: id, name."""
        return cast(list[dict[str, Any]], self._call("GET", "accounts"))

    def define_accounts(self, *names: str) -> list[dict[str, Any]]:
        """Create accounts without an API request; raises ValueError on a duplicate name."""
        body = {"accounts": list(names)}
        return cast(list[dict[str, Any]], self._call("POST", "accounts", body))

    def stats(self) -> dict[str, Any]:
        """Counters and peaks (keys listed in README.md beside this module)."""
        return cast(dict[str, Any], self._call("GET", "stats"))

    def requests_log(self) -> list[dict[str, Any]]:
        """Client requests in arrival order: t, method, path, status, email, body."""
        return cast(list[dict[str, Any]], self._call("GET", "requests"))

    def faults(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "faults"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge fault settings (see faults.py); returns the settings now in force.

        Raises ValueError with the emulator's message when a setting is invalid.
        """
        return cast(dict[str, Any], self._call("POST", "faults", faults))

    def clear_faults(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", "faults", {"clear": True}))

    def bulk_settings(self) -> dict[str, Any]:
        """The bulk import settings in force (keys listed in bulk_settings.py)."""
        return cast(dict[str, Any], self._call("GET", "bulk"))

    def set_bulk(self, **settings: Any) -> dict[str, Any]:
        """Merge bulk settings: speed_per_s, paused, status_false_s, multi_per_minute,
        single_per_minute, fail_emails, next_batches, force_rate_limit (see
        bulk_settings.py); None restores one. Returns the settings now in force.

        Raises ValueError with the emulator's message when a setting is invalid.
        """
        return cast(dict[str, Any], self._call("POST", "bulk", settings))

    def clear_bulk(self) -> dict[str, Any]:
        """Back to the constructed bulk settings: unpaused, no bulk faults."""
        return cast(dict[str, Any], self._call("POST", "bulk", {"clear": True}))

    def set_bulk_speed(self, per_s: float) -> dict[str, Any]:
        """Apply queued bulk contacts at `per_s` contacts per second (> 0)."""
        return self.set_bulk(speed_per_s=per_s)

    def pause_bulk(self) -> dict[str, Any]:
        """Stop claiming batches and applying contacts; submissions still queue."""
        return self.set_bulk(paused=True)

    def resume_bulk(self) -> dict[str, Any]:
        return self.set_bulk(paused=False)

    def fail_next_batches(
        self, count: int = 1, *, status: str = "failed", after: int | None = None
    ) -> dict[str, Any]:
        """The next `count` batches claimed end `status`: "failed" (nothing applied) or
        "interrupted" (the first `after` contacts processed; None: half, rounded down)."""
        return self.set_bulk(next_batches={"status": status, "count": count, "after": after})

    def force_bulk_rate_limit(self, count: int = 1) -> dict[str, Any]:
        """The next `count` bulk_import requests get the 400 "Rate limit exceeded."."""
        return self.set_bulk(force_rate_limit=count)

    def bulk_stats(self) -> dict[str, Any]:
        """Bulk counters: batches_*, contacts_* (queued, applied, failed, pending),
        requests_refused, rate_limited, unknown_lists, blank_values, account_moves."""
        return cast(dict[str, Any], self._call("GET", "bulk/stats"))

    def bulk_batches(self) -> list[dict[str, Any]]:
        """Known batches, oldest first: batchId, status (as import/info shows it: false,
        "waiting", "claimed", "active", "completed", "failed" or "interrupted"), contacts,
        processed, succeeded, failed, submitted_at, claimed_at, finished_at (epoch s)."""
        return cast(list[dict[str, Any]], self._call("GET", "bulk/batches"))

    def bulk_batch(self, batch_id: str) -> dict[str, Any] | None:
        """One batch's summary plus `success` (contact ids) and `failure` (emails), or None."""
        response = self._session.get(
            f"{self.base_url}/_emulator/bulk/batches/{quote(batch_id, safe='')}",
            timeout=self._timeout_s,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    def wait_for_bulk(
        self,
        batch_ids: Iterable[str] | None = None,
        *,
        timeout_s: float = 30.0,
        poll_s: float = 0.02,
    ) -> list[dict[str, Any]]:
        """Poll until the given batches (None: every known one) have finished; returns
        their summaries. Raises TimeoutError after `timeout_s` seconds, or KeyError for a
        batch the emulator does not know."""
        wanted = None if batch_ids is None else list(batch_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            by_id = {batch["batchId"]: batch for batch in self.bulk_batches()}
            if wanted is None:
                batches = list(by_id.values())
            else:
                missing = [batch_id for batch_id in wanted if batch_id not in by_id]
                if missing:
                    raise KeyError(f"unknown bulk batches: {', '.join(missing)}")
                batches = [by_id[batch_id] for batch_id in wanted]
            if all(batch["status"] in _BULK_FINISHED for batch in batches):
                return batches
            if time.monotonic() >= deadline:
                raise TimeoutError(f"bulk batches not finished after {timeout_s:g} s")
            time.sleep(poll_s)

    def set_token(self, token: str) -> None:
        """Make `token` the only valid Api-Token, as when a customer rotates their key."""
        self._call("POST", "token", {"api_token": token})

    def reset(self) -> None:
        """Forget contacts, catalogs, log and stats; restore the default fields, the
        constructed faults and the token."""
        self._call("POST", "reset", {})

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, endpoint: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_emulator/{endpoint}", json=body, timeout=self._timeout_s
        )
        if response.status_code == 400:
            raise ValueError(response.json().get("message", "bad request"))
        response.raise_for_status()
        return response.json()
