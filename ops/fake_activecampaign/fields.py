"""The account's custom field definitions: what `GET /api/3/fields` lists.

Types are the reference's: text, textarea, date, datetime, dropdown, radio, checkbox,
listbox (the multi-select list; there is no `multiselect`), hidden and number. Dropdown,
radio, checkbox and listbox fields have options; a field value names an option by its
`value`.

The constructed catalog (`DEFAULT_FIELDS`) keeps ids 1 and 6 as the seed request uses them
(a text field and a date field) and has one field of every other type. Tests define their
own through the admin API, added to it or replacing it.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "DEFAULT_FIELDS",
    "FIELD_TYPES",
    "MULTI_VALUE_TYPES",
    "OPTION_TYPES",
    "FieldCatalog",
    "FieldConfigError",
    "FieldOption",
    "FieldRecord",
]

FIELD_TYPES = (
    "text",
    "textarea",
    "date",
    "datetime",
    "dropdown",
    "radio",
    "checkbox",
    "listbox",
    "hidden",
    "number",
)
OPTION_TYPES = frozenset({"dropdown", "radio", "checkbox", "listbox"})
MULTI_VALUE_TYPES = frozenset({"checkbox", "listbox"})
_SPEC_KEYS = frozenset({"title", "perstag", "type", "options"})
# The stamp the constructed fields carry, so their cdate does not change between runs.
_DEFAULT_CREATED_AT = datetime.fromisoformat("2020-08-01T10:54:59+00:00").timestamp()

DEFAULT_FIELDS: tuple[Mapping[str, Any], ...] = (
    {"title": "Company", "type": "text"},
    {"title": "Job title", "type": "text"},
    {"title": "Notes", "type": "textarea"},
    {"title": "Shirt size", "type": "dropdown", "options": ["S", "M", "L", "XL"]},
    {"title": "Plan", "type": "radio", "options": ["Free", "Pro", "Enterprise"]},
    {"title": "Signup date", "type": "date"},
    {"title": "Last login", "type": "datetime"},
    {"title": "Interests", "type": "listbox", "options": ["Product news", "Events", "Offers"]},
    {"title": "Newsletters", "type": "checkbox", "options": ["Weekly", "Monthly"]},
    {"title": "Lead source", "type": "hidden"},
    {"title": "Seats", "type": "number"},
)


class FieldConfigError(ValueError):
    """A field definition the admin API refuses (400 with the message)."""


@dataclass(frozen=True, slots=True)
class FieldOption:
    id: str
    field: str
    label: str
    value: str
    orderid: int  # 1-based position among the field's options


@dataclass(frozen=True, slots=True)
class FieldRecord:
    id: str
    title: str
    perstag: str  # without the % signs, e.g. "SHIRT_SIZE"
    type: str
    options: tuple[FieldOption, ...]
    created_at: float  # epoch seconds

    def option_values(self) -> frozenset[str]:
        return frozenset(option.value for option in self.options)


class FieldCatalog:
    """Thread-safe field definitions in id order; `reset()` restores `DEFAULT_FIELDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_unlocked()

    def define(
        self, specs: Sequence[Mapping[str, Any]], *, replace: bool = False, now_s: float
    ) -> list[FieldRecord]:
        """Add fields (or replace them all, ids restarting at 1), all or none.

        A spec is `{"title", "type", "perstag"?, "options"?}`; options are strings or
        `{"label", "value"}`. Titles and perstags are unique, case-insensitively.
        Raises FieldConfigError.
        """
        with self._lock:
            return self._define_unlocked(specs, replace=replace, now_s=now_s)

    def all(self) -> list[FieldRecord]:
        with self._lock:
            return list(self._fields.values())

    def get(self, field_id: str) -> FieldRecord | None:
        with self._lock:
            return self._fields.get(field_id)

    def reset(self) -> None:
        with self._lock:
            self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self._fields: dict[str, FieldRecord] = {}
        self._next_option_id = 1
        self._define_unlocked(DEFAULT_FIELDS, replace=True, now_s=_DEFAULT_CREATED_AT)

    def _define_unlocked(
        self, specs: Sequence[Mapping[str, Any]], *, replace: bool, now_s: float
    ) -> list[FieldRecord]:
        existing = [] if replace else list(self._fields.values())
        titles = {field.title.casefold() for field in existing}
        perstags = {field.perstag.casefold() for field in existing}
        next_id = 1 + max((int(field.id) for field in existing), default=0)
        option_ids = itertools.count(1 if replace else self._next_option_id)
        added = []
        for offset, spec in enumerate(specs):
            field = _field(spec, field_id=str(next_id + offset), option_ids=option_ids, now_s=now_s)
            if field.title.casefold() in titles:
                raise FieldConfigError(f"duplicate field title: {field.title!r}")
            if field.perstag.casefold() in perstags:
                raise FieldConfigError(f"duplicate perstag: {field.perstag!r}")
            titles.add(field.title.casefold())
            perstags.add(field.perstag.casefold())
            added.append(field)
        # Only now that every spec passed: all or none.
        self._next_option_id = next(option_ids)
        if replace:
            self._fields = {}
        self._fields.update((field.id, field) for field in added)
        return added


def _field(
    spec: Mapping[str, Any], *, field_id: str, option_ids: Iterator[int], now_s: float
) -> FieldRecord:
    if not isinstance(spec, Mapping):
        raise FieldConfigError("each field must be an object")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise FieldConfigError(f"unknown field keys: {', '.join(unknown)}")
    title = spec.get("title")
    if not isinstance(title, str) or not title.strip():
        raise FieldConfigError("field title must be a non-empty string")
    field_type = spec.get("type", "text")
    if field_type not in FIELD_TYPES:
        raise FieldConfigError(f"field type must be one of {', '.join(FIELD_TYPES)}")
    perstag = spec.get("perstag")
    if perstag is None:
        perstag = _perstag_from(title)
    if not isinstance(perstag, str) or not perstag.strip("%"):
        raise FieldConfigError("perstag must be a non-empty string")
    raw_options = spec.get("options") or []
    if raw_options and field_type not in OPTION_TYPES:
        raise FieldConfigError(f"a {field_type} field has no options")
    if not isinstance(raw_options, list):
        raise FieldConfigError("options must be a list")
    options = tuple(
        _option(raw, option_id=str(next(option_ids)), field_id=field_id, orderid=n)
        for n, raw in enumerate(raw_options, start=1)
    )
    if len({option.value for option in options}) != len(options):
        raise FieldConfigError(f"duplicate option values in {title!r}")
    return FieldRecord(field_id, title, perstag.strip("%"), field_type, options, now_s)


def _option(raw: Any, *, option_id: str, field_id: str, orderid: int) -> FieldOption:
    if isinstance(raw, str):
        label = value = raw
    elif isinstance(raw, Mapping) and isinstance(raw.get("value"), str):
        value = raw["value"]
        label = raw.get("label", value)
    else:
        raise FieldConfigError('options must be strings or {"label": ..., "value": ...}')
    if not isinstance(label, str) or not value:
        raise FieldConfigError("option values and labels must be non-empty strings")
    return FieldOption(option_id, field_id, label, value, orderid)


def _perstag_from(title: str) -> str:
    # How the app derives one from the title, as far as its examples show ("Shirt size" ->
    # "SHIRT_SIZE"); only the admin API relies on it.
    return re.sub(r"[^A-Z0-9]+", "_", title.upper()).strip("_") or "FIELD"
