"""References and names in a wire contact, checked and normalized by plain functions.

The marshmallow schemas (``worker/wire_schemas.py``) and the fast path that skips them
(``worker/fast_path.py``) call the very same functions, so both apply the very same rules:

- every text must be one UTF-8 can encode (``is_unicode_text``);
- an id is a positive integer below 2**63, given as an int or ASCII digits (``field_id``);
- a name (tag, list, account, field title) is trimmed, 1 to 255 characters, no controls;
- a v2 field is named by id, ``%PERSTAG%`` or title, a list by id or name.

A check that fails raises marshmallow's ``ValidationError``, whose messages the schemas report.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError

__all__ = [
    "MAX_TEXT",
    "NOT_UNICODE",
    "checked_name",
    "field_id",
    "field_reference",
    "is_digits",
    "is_unicode_text",
    "list_reference",
]

MAX_TEXT = 255
NOT_UNICODE = "Not valid Unicode text: contains a lone surrogate."


def is_unicode_text(text: str) -> bool:
    """False for a str holding a lone surrogate: JSON ("\\ud800") and Python allow one,
    UTF-8 and therefore Redis do not, so it would crash the Redis write of a whole batch."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _positive_id(value: Any, what: str) -> str:
    """An id below 2**63, given as an int or a string of ASCII digits, as its decimal digits."""
    message = f"{what} id must be a positive integer."
    if isinstance(value, bool):
        raise ValidationError(message)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and is_digits(value.strip()):
        # Length first: int() raises a plain ValueError, not a ValidationError, on more
        # than 4,300 digits, which escaped the schema and failed the pump's whole batch.
        # Anything over 19 significant digits is at least 2**63 anyway.
        digits = value.strip().lstrip("0")
        if len(digits) > 19:
            raise ValidationError(message)
        number = int(digits or "0")
    else:
        raise ValidationError(message)
    if number <= 0 or number >= 2**63:
        raise ValidationError(message)
    return str(number)


def field_id(value: Any) -> str:
    """A v1 field reference: a custom field id only."""
    return _positive_id(value, "Field")


# C0 and C1 controls and DEL: no ActiveCampaign name holds one, and they garble logs.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def checked_name(value: Any, what: str) -> str:
    """A name (tag, list, account, field title): trimmed, 1 to 255 characters, no controls."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string.")
    if not is_unicode_text(value):
        raise ValidationError(NOT_UNICODE)
    name = value.strip()
    if not name:
        raise ValidationError(f"{what} must not be blank.")
    if len(name) > MAX_TEXT:
        raise ValidationError(f"{what} is longer than maximum length {MAX_TEXT}.")
    if _CONTROL_CHARS.search(name):
        raise ValidationError(f"{what} must not contain control characters.")
    return name


_PERSTAG = re.compile(r"%[A-Za-z0-9_]+%")


def field_reference(value: Any) -> str:
    """A v2 field reference, normalized: an id's digits, ``%PERSTAG%`` upper-cased, or a
    title, trimmed. Digits always mean an id, and ``%...%`` always a perstag."""
    if isinstance(value, int) or (isinstance(value, str) and is_digits(value.strip())):
        return _positive_id(value, "Field")
    if not isinstance(value, str):
        raise ValidationError("Field must be an id, a %PERSTAG% or a title.")
    text = value.strip()
    if text.startswith("%") and text.endswith("%"):
        if len(text) > MAX_TEXT:
            raise ValidationError(f"Perstag is longer than maximum length {MAX_TEXT}.")
        if not _PERSTAG.fullmatch(text):
            raise ValidationError(
                "Perstag must be letters, digits and underscores between % signs."
            )
        return text.upper()
    return checked_name(value, "Field title")


def list_reference(value: Any) -> str:
    """A list's id (an int or digits) as its digits, or its name, trimmed."""
    if isinstance(value, int) or (isinstance(value, str) and is_digits(value.strip())):
        return _positive_id(value, "List")
    return checked_name(value, "List name")
