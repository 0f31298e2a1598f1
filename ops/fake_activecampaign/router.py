"""Route templates for the /api/3 endpoints: `/api/3/contactTags/{id}` style matching.

A template's `{name}` segment matches any one non-empty path segment and is handed to the
handler by name. The same templates group the request log's stats, so
`/api/3/contacts/7/contactTags` and `/api/3/contacts/8/contactTags` count as one path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fake_activecampaign.exchange import Reply, Request

__all__ = ["Handler", "Route", "Router"]

Handler = Callable[[Request, Mapping[str, str]], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str  # e.g. "/api/3/contacts/{contact}/contactTags"
    handler: Handler
    # A route with limits of its own (bulk import) admits its requests itself instead of
    # the account's 5/s window: it returns None to admit, or the refusal to answer.
    admit: Callable[[Request], Reply | None] | None = None
    # What the request log keeps of the body; None keeps it as sent.
    log_body: Callable[[Any], Any] | None = None

    def params(self, path: str) -> dict[str, str] | None:
        """The `{name}` values when `path` (without a trailing slash) fits the template."""
        return _params(self.template, path)


class Router:
    """Finds the route for a method and path; unknown combinations resolve to None."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = tuple(routes)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        path = path.rstrip("/")
        for route in self._routes:
            if route.method == method:
                params = route.params(path)
                if params is not None:
                    return route, params
        return None

    def template_for(self, path: str) -> str:
        """The template `path` fits, whatever the method; else the path itself."""
        stripped = path.rstrip("/")
        for route in self._routes:
            if route.params(stripped) is not None:
                return route.template
        return path


def _params(template: str, path: str) -> dict[str, str] | None:
    wanted, actual = template.split("/"), path.split("/")
    if len(wanted) != len(actual):
        return None
    params: dict[str, str] = {}
    for pattern, segment in zip(wanted, actual, strict=True):
        if pattern.startswith("{") and pattern.endswith("}"):
            if not segment:
                return None
            params[pattern[1:-1]] = segment
        elif pattern != segment:
            return None
    return params
