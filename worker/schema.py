"""marshmallow schemas for contact events, shared by producers and the worker.

The wire format (v1) is one JSON object per stream entry::

    {"v": 1, "id": "<uuid4>", "occurred_at": "<ISO-8601 with offset>", "source": "...",
     "contact": {"email": ..., "firstName": ..., "lastName": ..., "phone": ...,
                 "fieldValues": [{"field": "6", "value": "2008-01-20"}]}}

Inside the worker an event becomes a ``ContactEvent`` whose ``attributes`` map flat
attribute names (``firstName``, ``lastName``, ``phone``, ``field:<id>``) to strings:
that is the unit of last-write-wins merging.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from worker.errors import InvalidContactEvent

__all__ = [
    "MAX_EVENT_BYTES",
    "ContactEvent",
    "attributes_to_contact",
    "decode_event",
    "encode_event",
    "normalize_contact",
]

WIRE_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024
MAX_TEXT = 255
MAX_FIELD_VALUES = 500
FIELD_PREFIX = "field:"
_DEPRECATED = {
    "orgid": "orgid is deprecated: contact-organization links moved to ActiveCampaign's "
    "Account-Contact endpoints and cannot be set through contact sync.",
    "deleted": "deleted is deprecated: contacts are deleted with DELETE, not through sync.",
}


_NOT_UNICODE = "Not valid Unicode text: contains a lone surrogate."


def _is_unicode_text(text: str) -> bool:
    """False for a str holding a lone surrogate: JSON ("\\ud800") and Python allow one,
    UTF-8 and therefore Redis do not, so it would crash the Redis write of a whole batch."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """A string that UTF-8 can encode (see ``_is_unicode_text``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if not _is_unicode_text(text):
            raise ValidationError(_NOT_UNICODE)
        return text


class NormalizedEmail(Text):
    """An email address, trimmed and lower-cased before it is validated."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if len(text) > MAX_TEXT:
            raise ValidationError(f"Longer than maximum length {MAX_TEXT}.")
        validate.Email()(text)
        return text


class CustomFieldId(fields.Field[str]):
    """A custom field id: a positive integer, given as an int or a string of digits."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool):
            raise ValidationError("Field id must be a positive integer.")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            number = int(value.strip())
        else:
            raise ValidationError("Field id must be a positive integer.")
        if number <= 0 or number >= 2**63:
            raise ValidationError("Field id must be a positive integer.")
        return str(number)


class CustomFieldValue(fields.Field[str]):
    """A custom field value, normalized to the string ActiveCampaign expects.

    A list of strings becomes ``||a||b||`` (checkbox, multiselect), a date becomes
    ``YYYY-MM-DD``, an aware datetime becomes ISO-8601 with its offset.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            text = value
        elif isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValidationError("Datetime values must be timezone-aware.")
            text = value.isoformat()
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
        if not _is_unicode_text(text):
            raise ValidationError(_NOT_UNICODE)
        if len(text) > MAX_FIELD_VALUE_CHARS:
            raise ValidationError(f"Longer than maximum length {MAX_FIELD_VALUE_CHARS}.")
        return text


# Custom field values (textarea) can be long; the 64 KiB event limit bounds them as a whole.
MAX_FIELD_VALUE_CHARS = 16 * 1024


class FieldValueSchema(Schema):
    class Meta:
        unknown = RAISE

    field = CustomFieldId(required=True)
    value = CustomFieldValue(required=True, allow_none=False)


class ContactSchema(Schema):
    class Meta:
        unknown = RAISE

    email = NormalizedEmail(required=True)
    firstName = Text(validate=validate.Length(max=MAX_TEXT))
    lastName = Text(validate=validate.Length(max=MAX_TEXT))
    phone = Text(validate=validate.Length(max=MAX_TEXT))
    fieldValues = fields.List(
        fields.Nested(FieldValueSchema), validate=validate.Length(max=MAX_FIELD_VALUES)
    )

    @pre_load
    def reject_deprecated(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            found = {name: [message] for name, message in _DEPRECATED.items() if name in data}
            if found:
                raise ValidationError(found)
        return data

    @validates_schema
    def reject_duplicate_fields(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen: set[str] = set()
        for item in data.get("fieldValues", []):
            if item["field"] in seen:
                raise ValidationError(
                    f"Custom field {item['field']} appears more than once.", "fieldValues"
                )
            seen.add(item["field"])


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

    v = fields.Integer(required=True, strict=True, validate=validate.Equal(WIRE_VERSION))
    id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    source = Text(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    contact = fields.Nested(ContactSchema, required=True)


class _LenientEnvelope(Schema):
    """Reads just enough of a rejected event to say whose it was in a dead letter."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String()


_contact_schema = ContactSchema()
_event_schema = EventSchema()


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One validated change to one contact."""

    id: str
    occurred_at: dt.datetime
    source: str | None
    email: str
    attributes: dict[str, str]

    @property
    def occurred_at_us(self) -> int:
        """Microseconds since the epoch: the primary key of last-write-wins ordering."""
        delta = self.occurred_at - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def normalize_contact(contact: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an API-shaped contact dict and return it normalized (strings only).

    Raises InvalidContactEvent with marshmallow's per-field messages.
    """
    try:
        loaded: dict[str, Any] = _contact_schema.load(contact)
    except ValidationError as exc:
        raise InvalidContactEvent(exc.messages) from None
    return loaded


def encode_event(
    contact: Mapping[str, Any],
    *,
    occurred_at: dt.datetime | None = None,
    source: str | None = None,
    event_id: str | None = None,
) -> tuple[str, str]:
    """Validate a contact change and encode it as a v1 wire event.

    ``occurred_at`` defaults to now (UTC) and must be timezone-aware.
    Returns ``(event_id, json_text)``; raises InvalidContactEvent.
    """
    if occurred_at is None:
        occurred_at = dt.datetime.now(dt.UTC)
    elif occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise InvalidContactEvent({"occurred_at": ["Must be timezone-aware."]})
    if source is not None and (not isinstance(source, str) or len(source) > MAX_TEXT):
        raise InvalidContactEvent(
            {"source": [f"Must be a string of at most {MAX_TEXT} characters."]}
        )
    normalized = normalize_contact(contact)
    event_id = event_id or str(uuid.uuid4())
    document = {
        "v": WIRE_VERSION,
        "id": event_id,
        "occurred_at": occurred_at.isoformat(),
        "contact": normalized,
    }
    if source is not None:
        document["source"] = source
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate outside the validated fields (source, id)
        raise InvalidContactEvent({"_event": [_NOT_UNICODE]}) from None
    if size > MAX_EVENT_BYTES:
        raise InvalidContactEvent(
            {"_event": [f"Encoded event is {size} bytes; the limit is {MAX_EVENT_BYTES}."]}
        )
    return event_id, text


def decode_event(raw: bytes | str) -> ContactEvent:
    """Parse and validate one wire event. The wire is never trusted.

    Raises InvalidContactEvent for anything that is not a valid v1 event.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_BYTES:
        raise InvalidContactEvent(
            {"_event": [f"Event is {size} bytes; the limit is {MAX_EVENT_BYTES}."]}
        )
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested JSON must be a bad event, not a crashed worker.
        raise InvalidContactEvent({"_event": [f"Not valid JSON: {type(exc).__name__}."]}) from None
    if not isinstance(document, dict):
        raise InvalidContactEvent({"_event": ["An event must be a JSON object."]})
    # Checked before the schema: its messages would echo a bad key, and the dead letter's
    # errors would then fail to reach Redis just like the event itself.
    try:
        encodable = _is_unicode_text(json.dumps(document, ensure_ascii=False))
    except RecursionError:
        raise InvalidContactEvent({"_event": ["Too deeply nested."]}) from None
    if not encodable:
        raise InvalidContactEvent({"_event": [_NOT_UNICODE]})
    try:
        loaded = _event_schema.load(document)
    except ValidationError as exc:
        raise InvalidContactEvent(exc.messages) from None
    except RecursionError:
        raise InvalidContactEvent({"_event": ["Too deeply nested."]}) from None
    contact = loaded["contact"]
    return ContactEvent(
        id=str(loaded["id"]),
        occurred_at=loaded["occurred_at"],
        source=loaded["source"],
        email=contact["email"],
        attributes=contact_to_attributes(contact),
    )


def event_id_of(raw: bytes | str) -> str | None:
    """Best-effort id of a rejected event, for its dead letter."""
    try:
        document = json.loads(raw)
        if isinstance(document, dict):
            ident = _LenientEnvelope().load(document).get("id")
            if isinstance(ident, str) and _is_unicode_text(ident):
                return ident[:64]
    except (ValueError, RecursionError, ValidationError, TypeError):
        pass
    return None


def contact_to_attributes(contact: Mapping[str, Any]) -> dict[str, str]:
    """Flatten a normalized contact into merge attributes (email excluded)."""
    attributes = {
        name: contact[name] for name in ("firstName", "lastName", "phone") if name in contact
    }
    for item in contact.get("fieldValues", ()):
        attributes[FIELD_PREFIX + item["field"]] = item["value"]
    return attributes


def attributes_to_contact(email: str, attributes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Build the API's contact object from merge attributes."""
    contact: dict[str, Any] = {"email": email}
    field_values = []
    for name, value in sorted(attributes):
        if name.startswith(FIELD_PREFIX):
            field_values.append({"field": name[len(FIELD_PREFIX) :], "value": value})
        else:
            contact[name] = value
    if field_values:
        contact["fieldValues"] = field_values
    return contact
