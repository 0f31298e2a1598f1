"""The account's custom fields, as `GET /api/3/fields` lists them.

Ids 1 and 6 match the seed request (a text field and a date field); the rest cover the
other value formats a client must produce: datetime with an offset, and the
`||Option||` form of multi-value fields.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PAGE_SIZE", "FIELDS", "KNOWN_FIELD_IDS", "fields_page", "page_bounds"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_STAMP = "2020-08-01T10:54:59+00:00"

_FIELD_SPECS = (
    ("1", "Company", "text", "COMPANY"),
    ("2", "Job title", "text", "JOB_TITLE"),
    ("3", "Notes", "textarea", "NOTES"),
    ("4", "Shirt size", "dropdown", "SHIRT_SIZE"),
    ("5", "Plan", "radio", "PLAN"),
    ("6", "Signup date", "date", "SIGNUP_DATE"),
    ("7", "Last login", "datetime", "LAST_LOGIN"),
    ("8", "Interests", "multiselect", "INTERESTS"),
)

FIELDS: tuple[dict[str, str], ...] = tuple(
    {
        "title": title,
        "descript": "",
        "type": field_type,
        "isrequired": "0",
        "perstag": perstag,
        "defval": "",
        "visible": "1",
        "ordernum": field_id,
        "cdate": _STAMP,
        "udate": _STAMP,
        "id": field_id,
    }
    for field_id, title, field_type, perstag in _FIELD_SPECS
)
KNOWN_FIELD_IDS = frozenset(spec[0] for spec in _FIELD_SPECS)


def page_bounds(limit: str | None, offset: str | None) -> tuple[int, int]:
    """(limit, offset) from query text: limit defaults to 20 and is capped at 100."""
    size = _int_or(limit, DEFAULT_PAGE_SIZE)
    start = _int_or(offset, 0)
    return (DEFAULT_PAGE_SIZE if size <= 0 else min(size, MAX_PAGE_SIZE)), max(start, 0)


def fields_page(limit: str | None, offset: str | None) -> dict[str, Any]:
    """The `GET /api/3/fields` body for the given `limit` and `offset` query values."""
    size, start = page_bounds(limit, offset)
    return {
        "fields": [dict(spec) for spec in FIELDS[start : start + size]],
        "meta": {"total": str(len(FIELDS))},
    }


def _int_or(text: str | None, default: int) -> int:
    try:
        return default if text is None else int(text)
    except ValueError:
        return default
