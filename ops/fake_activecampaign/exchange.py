"""The plain values passed between the HTTP handler and the routes.

The handler turns bytes into a `Request` and a `Reply` back into bytes; routes never touch
sockets, so they read (and test) as ordinary functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["RESET", "Reply", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request. Times are taken once, right after the request was read."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    api_token: str | None  # held only while answering; never logged or stored
    body: Any  # parsed JSON; None when the body was empty or not JSON
    arrived_at_s: float  # epoch seconds, for the request log and stats
    arrived_mono_s: float  # monotonic seconds, for the rate window and outages
    body_error: int | None = None  # 400/411/413 found while reading the body

    def query_value(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON answer. `reset` means: close the socket without answering at all."""

    status: int
    body: Any = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    reset: bool = False
    delay_s: float = 0.0  # sleep before writing, outside the in-flight count (see api.py)

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> Reply:
        return replace(self, headers=self.headers + tuple(headers))


# Status 0 is what the request log records for a connection closed without an answer.
RESET = Reply(status=0, body=None, reset=True)
