"""`EmulatorClient`: the admin API from Python, for tests and scripts."""

from __future__ import annotations

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
        """Every stored contact keyed by lower-cased email; fieldValues as {field id: value}."""
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
        """Forget contacts, log and stats; restore the constructed faults and token."""
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

    def _call(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_emulator/{endpoint}", json=body, timeout=self._timeout_s
        )
        if response.status_code == 400:
            raise ValueError(response.json().get("message", "bad request"))
        response.raise_for_status()
        return response.json()
