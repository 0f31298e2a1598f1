"""Custom field values, formatted for the field's type as ActiveCampaign expects them.

Pure functions: the catalog (``worker/catalog.py``) knows each field's type and options;
this module turns an event's value into the string to send, or says why it cannot.

- ``date``: ``YYYY-MM-DD`` (a datetime's date part is taken);
- ``datetime``: ISO-8601 with an offset and whole seconds (fractions are never shown by
  ActiveCampaign, so they are not sent);
- ``checkbox`` and ``listbox`` (the multi-select list; there is no ``multiselect`` type):
  ``||a||b||``, every item one of the field's options; a single value becomes ``||a||``;
- ``dropdown`` and ``radio``: one of the field's options;
- everything else (``text``, ``textarea``, ``hidden``, ``number``, types we do not know):
  sent as given. ``""`` always clears a field and is never checked against options.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field

__all__ = ["CHOICE_TYPES", "MULTI_TYPES", "FieldDefinition", "InvalidFieldValue", "format_value"]

MULTI_TYPES = frozenset({"checkbox", "listbox"})
CHOICE_TYPES = MULTI_TYPES | {"dropdown", "radio"}


@dataclass(frozen=True, slots=True)
class FieldDefinition:
    """One custom field as the catalog holds it."""

    id: str
    title: str
    perstag: str
    type: str
    options: tuple[str, ...] = field(default=())


class InvalidFieldValue(ValueError):
    """A value the field cannot take. ``reason`` is ``invalid_option`` or ``invalid_value``."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def format_value(definition: FieldDefinition, value: str) -> str:
    """The string to send for ``value`` in the field ``definition``; raises InvalidFieldValue."""
    if value == "":
        return value
    kind = definition.type
    if kind == "date":
        return _parse_moment(definition, value, date_only=True)
    if kind == "datetime":
        return _parse_moment(definition, value, date_only=False)
    if kind in MULTI_TYPES:
        items = _split_multi(value)
        _check_options(definition, items)
        return "||" + "||".join(items) + "||"
    if kind in CHOICE_TYPES:
        _check_options(definition, [value])
    return value


def _split_multi(value: str) -> list[str]:
    if value.startswith("||") and value.endswith("||") and len(value) >= 4:
        return [item for item in value[2:-2].split("||") if item != ""]
    return [value]


def _check_options(definition: FieldDefinition, items: Collection[str]) -> None:
    unknown = [item for item in items if item not in definition.options]
    if unknown:
        shown = ", ".join(repr(item) for item in unknown)
        raise InvalidFieldValue(
            "invalid_option",
            f"{shown} is not an option of field {_name(definition)} "
            f"(options: {', '.join(repr(option) for option in definition.options) or 'none'})",
        )


def _parse_moment(definition: FieldDefinition, value: str, *, date_only: bool) -> str:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFieldValue(
            "invalid_value",
            f"{value!r} is not an ISO-8601 date{'' if date_only else '-time'} "
            f"for field {_name(definition)}",
        ) from None
    if date_only:
        return moment.date().isoformat()
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidFieldValue(
            "invalid_value", f"{value!r} has no UTC offset, which field {_name(definition)} needs"
        )
    return moment.replace(microsecond=0).isoformat(timespec="seconds")


def _name(definition: FieldDefinition) -> str:
    return f"{definition.id} ({definition.title!r}, %{definition.perstag}%)"
