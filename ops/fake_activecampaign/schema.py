"""What the endpoints accept: `/contact/sync` checked the way the real endpoint checks it,
and the `{"<resource>": {...}}` bodies of the tag, list and account endpoints.

Documented attributes are `email` (required), `firstName`, `lastName`, `phone` and
`fieldValues`; anything else is ignored, as ActiveCampaign ignores undocumented keys, but
reported so tests can catch a client that sends junk. Deprecated `orgid` and `deleted` are
ignored the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCEPTED_ATTRIBUTES",
    "EMAIL_INVALID",
    "EMAIL_MISSING",
    "BadSyncBody",
    "EmailProblem",
    "SyncInput",
    "contact_object",
    "email_problem",
    "ignored_attributes",
    "parse_contact",
    "text_value",
    "wrapped_object",
]

ACCEPTED_ATTRIBUTES = frozenset({"email", "firstName", "lastName", "phone", "fieldValues"})
TEXT_ATTRIBUTES = ("firstName", "lastName", "phone")
MAX_EMAIL_LENGTH = 255
# Characters RFC 5322 allows only inside quotes; real sign-up forms never produce them.
_FORBIDDEN_EMAIL_CHARS = frozenset('()<>[]\\,;:"')


class BadSyncBody(ValueError):
    """The body is not `{"contact": {...}}` with usable types: answered 400 with `{}`."""


@dataclass(frozen=True, slots=True)
class EmailProblem:
    title: str
    code: str


EMAIL_MISSING = EmailProblem("Contact Email is required", "field_missing")
EMAIL_INVALID = EmailProblem("Email address is not valid.", "email_invalid")


@dataclass(frozen=True, slots=True)
class SyncInput:
    """A valid sync request. Only attributes that were sent appear (absent means unchanged)."""

    email: str
    attributes: dict[str, str]  # subset of TEXT_ATTRIBUTES
    field_values: tuple[tuple[str, str], ...]  # (field id, value), one per field, last wins


def contact_object(body: Any) -> dict[str, Any]:
    """The `contact` object of a parsed body. Raises BadSyncBody."""
    contact = wrapped_object(body, "contact")
    if contact is None:
        raise BadSyncBody('expected {"contact": {...}}')
    return contact


def wrapped_object(body: Any, key: str) -> dict[str, Any] | None:
    """`body[key]` when the body is `{key: {...}}`, else None (answered 400 with `{}`)."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        return None
    inner: dict[str, Any] = body[key]
    return inner


def text_value(value: Any) -> str | None:
    """An id or name as text, from a string or an integer; None when absent or blank.

    The API sends ids as strings and accepts numbers for them; anything else (objects,
    booleans) counts as missing.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if text.strip() else None


def ignored_attributes(contact: dict[str, Any]) -> tuple[str, ...]:
    """The keys the real API would silently ignore, sorted."""
    return tuple(sorted(key for key in contact if key not in ACCEPTED_ATTRIBUTES))


def email_problem(value: Any) -> EmailProblem | None:
    """None when `value` is an acceptable email: one "@", a dotted domain, no spaces, <= 255."""
    if value is None or value == "":
        return EMAIL_MISSING
    if not isinstance(value, str) or len(value) > MAX_EMAIL_LENGTH or value.count("@") != 1:
        return EMAIL_INVALID
    if any(ch.isspace() or not ch.isprintable() or ch in _FORBIDDEN_EMAIL_CHARS for ch in value):
        return EMAIL_INVALID
    local, _, domain = value.partition("@")
    labels = domain.split(".")
    if not local or len(labels) < 2 or not all(labels):
        return EMAIL_INVALID
    return None


def parse_contact(contact: dict[str, Any]) -> SyncInput:
    """A SyncInput from a contact whose email already passed `email_problem`.

    Raises BadSyncBody for attributes of unusable types (objects, lists, malformed
    fieldValues). Numbers are kept as their text and null as "", as form posts do.
    """
    attributes = {name: _text(name, contact[name]) for name in TEXT_ATTRIBUTES if name in contact}
    values: dict[str, str] = {}
    raw_values = contact.get("fieldValues")
    if raw_values is not None:
        if not isinstance(raw_values, list):
            raise BadSyncBody("fieldValues must be a list")
        for entry in raw_values:
            if not isinstance(entry, dict) or "field" not in entry:
                raise BadSyncBody('fieldValues entries must be {"field": id, "value": text}')
            field_id = _text("fieldValues.field", entry["field"])
            if not field_id:
                raise BadSyncBody("fieldValues.field must not be empty")
            values[field_id] = _text("fieldValues.value", entry.get("value"))
    return SyncInput(
        email=str(contact["email"]), attributes=attributes, field_values=tuple(values.items())
    )


def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        # bool is an int subclass; str(True) would store "True", which no form sends.
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    raise BadSyncBody(f"{name} must be text")
