"""Whether a custom field value is in the form the reference gives for the field's type.

The real API's answer to a value in another form (a date as "20/01/2008", a dropdown value
that is not an option) is not documented, so `/contact/sync` stores every value as sent,
as it does for unknown field ids, and only counts these in the stats
(`malformed_field_values`) for tests to assert on. An empty value clears a field and fits
every type.

Forms, from the reference: date `YYYY-MM-DD`; datetime ISO-8601 with an offset and whole
seconds (`2020-05-19T02:45:00-05:00`); checkbox and listbox `||Option 1||Option 3||`, one
choice `||Option 2||`; dropdown and radio one option value. Number: anything Python reads
as a finite number (an assumption; the reference only names the type).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime

from fake_activecampaign.fields import MULTI_VALUE_TYPES, OPTION_TYPES, FieldRecord

__all__ = ["value_problem"]

_DATE = re.compile(r"\d{4}-\d\d-\d\d")
# "Z" is ISO-8601's own spelling of a zero offset.
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z)")


def value_problem(field: FieldRecord, value: str) -> str | None:
    """None when `value` has the form `field.type` wants, else what is wrong with it."""
    if value == "":
        return None
    if field.type == "date":
        return None if _is_date(value) else "not a YYYY-MM-DD date"
    if field.type == "datetime":
        return None if _is_datetime(value) else "not ISO-8601 with an offset and whole seconds"
    if field.type == "number":
        return None if _is_number(value) else "not a number"
    if field.type in MULTI_VALUE_TYPES:
        return _multi_value_problem(field, value)
    if field.type in OPTION_TYPES and value not in field.option_values():
        return "not an option"
    return None


def _multi_value_problem(field: FieldRecord, value: str) -> str | None:
    if not (value.startswith("||") and value.endswith("||")) or value == "||":
        return "not in the ||a||b|| form"
    choices = value[2:-2].split("||")
    if not all(choice in field.option_values() for choice in choices):
        return "not an option"
    return None


def _is_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    if not _DATETIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
