"""marshmallow field types for the wire format: how one value of an event is read.

``Text`` and ``NormalizedEmail`` are strings UTF-8 can encode; ``Checked`` hands a value to
one plain check function (``worker/references.py``, ``worker/footprint_checks.py``), which
the fast path calls too; ``CustomFieldValue`` turns a custom field's value into the string
ActiveCampaign expects. The schemas built from them are in ``worker/wire_schemas.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError, fields, validate

from worker.references import MAX_TEXT, NOT_UNICODE, is_unicode_text

__all__ = ["MAX_FIELD_VALUE_CHARS", "Checked", "CustomFieldValue", "NormalizedEmail", "Text"]

# Custom field values (textarea) can be long; the 64 KiB event limit bounds them as a whole.
MAX_FIELD_VALUE_CHARS = 16 * 1024


class Text(fields.String):
    """A string that UTF-8 can encode (see ``is_unicode_text``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if not is_unicode_text(text):
            raise ValidationError(NOT_UNICODE)
        return text


class NormalizedEmail(Text):
    """An email address, trimmed and lower-cased before it is validated."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if len(text) > MAX_TEXT:
            raise ValidationError(f"Longer than maximum length {MAX_TEXT}.")
        validate.Email()(text)
        return text


class Checked(fields.Field[Any]):
    """A field whose rules are one plain function, which the fast path also calls."""

    def __init__(self, check: Callable[[Any], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.check(value)


class CustomFieldValue(fields.Field[str]):
    """A custom field value, normalized to the string ActiveCampaign expects.

    A list of strings becomes ``||a||b||`` (checkbox, listbox), a date becomes
    ``YYYY-MM-DD``, an aware datetime becomes ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (see
    ``_datetime_value``).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            text = value
        elif isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValidationError("Datetime values must be timezone-aware.")
            try:
                text = _datetime_value(value)
            except OverflowError:  # in UTC, a moment on 0001-01-01 or 9999-12-31 may not fit
                raise ValidationError("Datetime is out of range.") from None
        elif isinstance(value, dt.date):
            text = value.isoformat()
        elif isinstance(value, list | tuple):
            if not all(isinstance(item, str) for item in value):
                raise ValidationError("A list value must hold strings only.")
            if any("||" in item for item in value):
                raise ValidationError("List items must not contain '||'.")
            text = "||" + "||".join(value) + "||" if value else ""
        else:
            raise ValidationError(
                "Value must be a string, a list of strings, a date or an aware datetime."
            )
        if not is_unicode_text(text):
            raise ValidationError(NOT_UNICODE)
        if len(text) > MAX_FIELD_VALUE_CHARS:
            raise ValidationError(f"Longer than maximum length {MAX_FIELD_VALUE_CHARS}.")
        return text


def _datetime_value(moment: dt.datetime) -> str:
    """An aware datetime as ActiveCampaign shows datetime fields: ``2020-05-19T02:45:00-05:00``.

    Whole seconds (microseconds are cut, not rounded) and the datetime's own offset. An
    offset with seconds (zoneinfo's local mean time before about 1900) has no ``+HH:MM``
    spelling, so that moment is given in UTC instead.
    """
    offset = moment.utcoffset()
    if offset is not None and offset % dt.timedelta(minutes=1):
        moment = moment.astimezone(dt.UTC)
    return moment.isoformat(timespec="seconds")
