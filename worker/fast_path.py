"""The fast path: plainly valid contacts and events read without marshmallow's machinery.

``normalize_contact`` and ``decode_event`` (``worker/schema.py``) try these first and load
with the schemas (``worker/wire_schemas.py``) only when they return None. They call the
schemas' own check functions (``worker/references.py``, ``worker/footprint_checks.py``),
so both paths apply the very same rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, validate

from worker.destinations import DESTINATION_NAME
from worker.event import TEXT_ATTRIBUTES
from worker.footprint_checks import account_name, list_changes, tag_changes
from worker.keys import DEFAULT_DESTINATION
from worker.references import MAX_TEXT, field_reference, is_digits, is_unicode_text
from worker.wire_fields import MAX_FIELD_VALUE_CHARS
from worker.wire_schemas import MAX_FIELD_VALUES, WIRE_VERSION, WIRE_VERSIONS, event_schema

__all__ = ["plain_contact", "plain_event"]

_CONTACT_KEYS_V1 = frozenset(("email", *TEXT_ATTRIBUTES, "fieldValues"))
_CONTACT_KEYS = _CONTACT_KEYS_V1 | {"tags", "lists", "account"}
_FIELD_VALUE_KEYS = frozenset(("field", "value"))
_EMAIL = validate.Email()
# The fast path's versions of the schema's checked fields (ContactSchema), in its order.
_CHECKED = (("tags", tag_changes), ("lists", list_changes), ("account", account_name))


def plain_contact(
    contact: Mapping[str, Any], *, version: int = WIRE_VERSION
) -> dict[str, Any] | None:
    """What ``ContactSchema`` (``ContactSchemaV1`` for ``version`` 1) returns for a plainly
    valid contact, without marshmallow.

    Only the common case: a dict of str values, a list of ``{"field", "value"}`` dicts with
    str values, and tags, lists and account that their own check functions (the schema's
    too) accept. Anything else returns None and the schema decides, so its messages stay
    the only wording of an error. A full schema load costs about 70 µs, this about 10 µs; a
    property test (tests/worker/test_schema_plain_contact.py) checks that whenever this
    returns a dict it is exactly the schema's result.
    """
    allowed = _CONTACT_KEYS_V1 if version == 1 else _CONTACT_KEYS
    if type(contact) is not dict or not contact.keys() <= allowed:
        return None
    email = contact.get("email")
    if type(email) is not str or not is_unicode_text(email):
        return None
    email = email.strip().lower()
    if len(email) > MAX_TEXT:
        return None
    try:
        _EMAIL(email)
    except ValidationError:
        return None
    result: dict[str, Any] = {"email": email}
    for name in TEXT_ATTRIBUTES:
        if name in contact:
            value = contact[name]
            if type(value) is not str or len(value) > MAX_TEXT or not is_unicode_text(value):
                return None
            result[name] = value
    if "fieldValues" in contact:
        values = _plain_field_values(contact["fieldValues"], version=version)
        if values is None:
            return None
        result["fieldValues"] = values
    for name, check in _CHECKED:
        if name in contact:
            try:
                result[name] = check(contact[name])
            except ValidationError:
                return None
    return result


def _plain_field_values(items: Any, *, version: int) -> list[dict[str, str]] | None:
    """``fieldValues`` as the schema loads them, or None (see ``plain_contact``)."""
    if type(items) is not list or len(items) > MAX_FIELD_VALUES:
        return None
    values, seen = [], set()
    for item in items:
        if type(item) is not dict or item.keys() != _FIELD_VALUE_KEYS:
            return None
        ref, value = item["field"], item["value"]
        if type(ref) is int:
            if not 0 < ref < 2**63:
                return None
            ref = str(ref)
        elif type(ref) is str and is_digits(ref) and len(ref) <= 19:
            # int() raises ValueError past 4,300 digits; 2**63 has 19. The schema decides.
            number = int(ref)  # digits only: no white space to strip, no sign
            if not 0 < number < 2**63:
                return None
            ref = str(number)
        elif version == 1 or type(ref) is not str:
            return None
        else:
            try:
                ref = field_reference(ref)
            except ValidationError:
                return None
        if ref.casefold() in seen:
            return None
        seen.add(ref.casefold())
        if (
            type(value) is not str
            or len(value) > MAX_FIELD_VALUE_CHARS
            or not is_unicode_text(value)
        ):
            return None
        values.append({"field": ref, "value": value})
    return values


_EVENT_KEYS = frozenset(("v", "id", "occurred_at", "source", "destination", "contact"))
_REQUIRED_EVENT_KEYS = frozenset(("v", "id", "occurred_at", "contact"))


def plain_event(document: dict[str, Any]) -> dict[str, Any] | None:
    """What ``EventSchema`` returns for a plainly valid event, or None (see ``plain_contact``).

    ``occurred_at`` goes through the schema's own field, so dates parse exactly as there.
    """
    if not _REQUIRED_EVENT_KEYS <= document.keys() <= _EVENT_KEYS:
        return None
    version, source = document["v"], document.get("source")
    if type(version) is not int or version not in WIRE_VERSIONS or type(document["id"]) is not str:
        return None
    if source is not None and (
        type(source) is not str or len(source) > MAX_TEXT or not is_unicode_text(source)
    ):
        return None
    destination = document.get("destination", DEFAULT_DESTINATION)
    if type(destination) is not str or not DESTINATION_NAME.fullmatch(destination):
        return None
    contact = plain_contact(document["contact"], version=version)
    if contact is None:
        return None
    try:
        event_id = uuid.UUID(document["id"])
        occurred_at = event_schema.fields["occurred_at"].deserialize(document["occurred_at"])
    except (ValueError, ValidationError):
        return None
    return {
        "id": event_id,
        "occurred_at": occurred_at,
        "source": source,
        "destination": destination,
        "contact": contact,
    }
