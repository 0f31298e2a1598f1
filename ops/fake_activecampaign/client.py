"""`EmulatorClient`: the admin API from Python, for tests and scripts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

import requests

__all__ = ["EmulatorClient"]


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
