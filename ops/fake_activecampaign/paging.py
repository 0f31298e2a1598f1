"""Paging of listings: `limit` and `offset` as the API's general pagination page describes.

Default page size 20, at most 100; an offset past the end gives an empty page. What the
real API does with a limit of 0, a negative one or text is not documented: the emulator
uses the default page size for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fake_activecampaign.exchange import Reply, Request

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "listing", "page_bounds", "page_of"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

T = TypeVar("T")


def page_bounds(limit: str | None, offset: str | None) -> tuple[int, int]:
    """(limit, offset) from query text: limit defaults to 20 and is capped at 100."""
    size = _int_or(limit, DEFAULT_PAGE_SIZE)
    start = _int_or(offset, 0)
    return (DEFAULT_PAGE_SIZE if size <= 0 else min(size, MAX_PAGE_SIZE)), max(start, 0)


def page_of(items: Sequence[T], request: Request) -> tuple[list[T], int]:
    """The page of `items` the request's `limit`/`offset` ask for, and the total count."""
    size, start = page_bounds(request.query_value("limit"), request.query_value("offset"))
    return list(items[start : start + size]), len(items)


def listing(
    key: str, items: Sequence[T], request: Request, render: Callable[[T], dict[str, Any]]
) -> Reply:
    """200 `{key: [the page, rendered], "meta": {"total": "N"}}`; the total is a string."""
    page, total = page_of(items, request)
    return Reply(200, {key: [render(item) for item in page], "meta": {"total": str(total)}})


def _int_or(text: str | None, default: int) -> int:
    try:
        return default if text is None else int(text)
    except ValueError:
        return default
