"""The account's API token, replaceable at runtime to simulate a customer rotating it."""

from __future__ import annotations

import hmac
import threading

__all__ = ["ApiToken"]


class ApiToken:
    """Holds the one valid `Api-Token` value; `reset()` restores the constructed one."""

    def __init__(self, token: str) -> None:
        self._initial = _checked(token)
        self._token = self._initial
        self._lock = threading.Lock()

    def matches(self, presented: str | None) -> bool:
        """True when `presented` is the current token (constant-time comparison)."""
        if presented is None:
            return False
        with self._lock:
            current = self._token
        return hmac.compare_digest(presented.encode(), current.encode())

    def set(self, token: str) -> None:
        checked = _checked(token)
        with self._lock:
            self._token = checked

    def reset(self) -> None:
        with self._lock:
            self._token = self._initial

    def __repr__(self) -> str:
        return "ApiToken(<redacted>)"


def _checked(token: str) -> str:
    # An empty token would let a client that forgot the header look authenticated.
    if not isinstance(token, str) or not token:
        raise ValueError("api_token must be a non-empty string")
    return token
