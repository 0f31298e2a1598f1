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
import re
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
            # Length first: int() raises a plain ValueError, not a ValidationError, on more
            # than 4,300 digits, which escaped the schema and failed the pump's whole batch.
            # Anything over 19 significant digits is at least 2**63 anyway.
            digits = value.strip().lstrip("0")
            if len(digits) > 19:
                raise ValidationError("Field id must be a positive integer.")
            number = int(digits or "0")
        else:
            raise ValidationError("Field id must be a positive integer.")
        if number <= 0 or number >= 2**63:
            raise ValidationError("Field id must be a positive integer.")
        return str(number)


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
        if not _is_unicode_text(text):
            raise ValidationError(_NOT_UNICODE)
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
# Built once: json.dumps() with options builds a new encoder on every call.
_WIRE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
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


_TEXT_ATTRIBUTES = ("firstName", "lastName", "phone")
_CONTACT_KEYS = frozenset(("email", *_TEXT_ATTRIBUTES, "fieldValues"))
_FIELD_VALUE_KEYS = frozenset(("field", "value"))
_EMAIL = validate.Email()


def _plain_contact(contact: Mapping[str, Any]) -> dict[str, Any] | None:
    """What ``ContactSchema`` returns for a plainly valid contact, without marshmallow.

    Only the common case: a dict of str values (and a list of ``{"field", "value"}`` dicts
    with int or digit-string ids and str values) that passes every rule the schema states.
    Anything else returns None and the schema decides, so its messages stay the only
    wording of an error. A full schema load costs about 70 µs, this about 10 µs; a
    property test (tests/worker/test_schema_plain_contact.py) checks that whenever this
    returns a dict it is exactly the schema's result.
    """
    if type(contact) is not dict or not contact.keys() <= _CONTACT_KEYS:
        return None
    email = contact.get("email")
    if type(email) is not str or not _is_unicode_text(email):
        return None
    email = email.strip().lower()
    if len(email) > MAX_TEXT:
        return None
    try:
        _EMAIL(email)
    except ValidationError:
        return None
    result: dict[str, Any] = {"email": email}
    for name in _TEXT_ATTRIBUTES:
        if name in contact:
            value = contact[name]
            if type(value) is not str or len(value) > MAX_TEXT or not _is_unicode_text(value):
                return None
            result[name] = value
    if "fieldValues" in contact:
        items = contact["fieldValues"]
        if type(items) is not list or len(items) > MAX_FIELD_VALUES:
            return None
        values, seen = [], set()
        for item in items:
            if type(item) is not dict or item.keys() != _FIELD_VALUE_KEYS:
                return None
            field_id, value = item["field"], item["value"]
            if type(field_id) is int:
                number = field_id
            elif (
                type(field_id) is str
                and field_id.isascii()
                and field_id.isdigit()
                # int() raises ValueError past 4,300 digits; 2**63 has 19. The schema decides.
                and len(field_id) <= 19
            ):
                number = int(field_id)  # digits only: no white space to strip, no sign
            else:
                return None
            if not 0 < number < 2**63 or number in seen:
                return None
            seen.add(number)
            if (
                type(value) is not str
                or len(value) > MAX_FIELD_VALUE_CHARS
                or not _is_unicode_text(value)
            ):
                return None
            values.append({"field": str(number), "value": value})
        result["fieldValues"] = values
    return result


_EVENT_KEYS = frozenset(("v", "id", "occurred_at", "source", "contact"))
_REQUIRED_EVENT_KEYS = frozenset(("v", "id", "occurred_at", "contact"))


def _plain_event(document: dict[str, Any]) -> dict[str, Any] | None:
    """What ``EventSchema`` returns for a plainly valid event, or None (see ``_plain_contact``).

    ``occurred_at`` goes through the schema's own field, so dates parse exactly as there.
    """
    if not _REQUIRED_EVENT_KEYS <= document.keys() <= _EVENT_KEYS:
        return None
    version, source = document["v"], document.get("source")
    if type(version) is not int or version != WIRE_VERSION or type(document["id"]) is not str:
        return None
    if source is not None and (
        type(source) is not str or len(source) > MAX_TEXT or not _is_unicode_text(source)
    ):
        return None
    contact = _plain_contact(document["contact"])
    if contact is None:
        return None
    try:
        event_id = uuid.UUID(document["id"])
        occurred_at = _event_schema.fields["occurred_at"].deserialize(document["occurred_at"])
    except (ValueError, ValidationError):
        return None
    return {"id": event_id, "occurred_at": occurred_at, "source": source, "contact": contact}


def normalize_contact(contact: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an API-shaped contact dict and return it normalized (strings only).

    Raises InvalidContactEvent with marshmallow's per-field messages.
    """
    plain = _plain_contact(contact)
    if plain is not None:
        return plain
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
    elif not isinstance(occurred_at, dt.datetime):
        # A str or a date would otherwise fail below with AttributeError, not a clear message.
        raise InvalidContactEvent({"occurred_at": ["Must be a timezone-aware datetime."]})
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
    text = _WIRE_ENCODER.encode(document)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate outside the validated fields (source, id)
        raise InvalidContactEvent({"_event": [_NOT_UNICODE]}) from None
    if size > MAX_EVENT_BYTES:
        raise InvalidContactEvent(
            {"_event": [f"Encoded event is {size} bytes; the limit is {MAX_EVENT_BYTES}."]}
        )
    return event_id, text


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _may_hold_lone_surrogate(raw: bytes | str) -> bool:
    """False only when the JSON document parsed from ``raw`` cannot hold a lone surrogate.

    From a str, one can come only from the text itself or from a ``\\uD800``..``\\uDFFF``
    escape; both are cheap to rule out, unlike encoding the whole document again. Bytes
    (which json.loads may read as UTF-16) always get the full check.
    """
    if isinstance(raw, bytes):
        return True
    return not _is_unicode_text(raw) or _SURROGATE_ESCAPE.search(raw) is not None


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
    if _may_hold_lone_surrogate(raw):
        try:
            encodable = _is_unicode_text(json.dumps(document, ensure_ascii=False))
        except RecursionError:
            raise InvalidContactEvent({"_event": ["Too deeply nested."]}) from None
        if not encodable:
            raise InvalidContactEvent({"_event": [_NOT_UNICODE]})
    loaded = _plain_event(document)
    try:
        if loaded is None:
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
