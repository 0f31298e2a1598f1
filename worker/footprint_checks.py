"""Checks for a v2 contact's tags, lists and account (its footprint), as plain functions.

``ContactSchema`` (``worker/wire_schemas.py``) reads ``tags``, ``lists`` and ``account``
through these, and the fast path (``worker/fast_path.py``) calls them too:

- ``tags``: ``{"<name>": true | false}``, true adds the tag and false removes it;
- ``lists``: ``{"<id or name>": "subscribed" | "unsubscribed"}``;
- ``account``: the company's name, or ``""`` to unlink the contact.

Each tag and list costs an API request of its own, so an event holds at most 500 of each.
References are normalized (``worker/references.py``) and distinct ignoring case. A bad one
raises marshmallow's ``ValidationError``, keyed by the reference as written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from marshmallow import ValidationError

from worker.event import LIST_STATUS_CODES
from worker.references import checked_name, list_reference

__all__ = ["MAX_LISTS", "MAX_TAGS", "account_name", "list_changes", "tag_changes"]

# Each tag and list is an API request of its own: bounded like fieldValues.
MAX_TAGS = 500
MAX_LISTS = 500


def tag_changes(value: Any) -> dict[str, bool]:
    """Tag name -> True (add) or False (remove); names trimmed and distinct ignoring case."""
    return _changes(
        value,
        noun="Tag",
        shape="an object of tag name to true (add) or false (remove)",
        limit=MAX_TAGS,
        key=_tag_name,
        item=_flag,
    )


def list_changes(value: Any) -> dict[str, str]:
    """List id or name -> "subscribed" or "unsubscribed"; ids as digits, names trimmed."""
    return _changes(
        value,
        noun="List",
        shape='an object of list id or name to "subscribed" or "unsubscribed"',
        limit=MAX_LISTS,
        key=list_reference,
        item=_subscription,
    )


def _tag_name(value: Any) -> str:
    return checked_name(value, "Tag name")


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise ValidationError("Must be true (add the tag) or false (remove it).")
    return value


def _subscription(value: Any) -> str:
    if type(value) is not str or value not in LIST_STATUS_CODES:
        raise ValidationError('Must be "subscribed" or "unsubscribed".')
    return value


_T = TypeVar("_T")


def _changes(
    value: Any,
    *,
    noun: str,
    shape: str,
    limit: int,
    key: Callable[[Any], str],
    item: Callable[[Any], _T],
) -> dict[str, _T]:
    """References (normalized by ``key``, distinct ignoring case) to values (checked by
    ``item``). Errors are keyed by each reference as written, so they name it."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"Must be {shape}.")
    if len(value) > limit:
        raise ValidationError(f"At most {limit} items in one event.")
    changes: dict[str, _T] = {}
    seen: set[str] = set()
    errors: dict[Any, list[str]] = {}
    for written, change in value.items():
        try:
            ref = key(written)
            if ref.casefold() in seen:
                raise ValidationError(f"{noun} {ref} appears more than once.")
            changes[ref] = item(change)
        except ValidationError as exc:
            errors[written] = list(exc.messages)
            continue
        seen.add(ref.casefold())
    if errors:
        raise ValidationError(errors)
    return changes


def account_name(value: Any) -> str:
    """The contact's account (company) name, trimmed; "" unlinks the contact."""
    return "" if value == "" and type(value) is str else checked_name(value, "Account name")
