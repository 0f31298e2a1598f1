"""marshmallow schemas for contact events, shared by producers and the worker.

The wire format is one JSON object per stream entry (docs/architecture.md states every rule)::

    {"v": 2, "id": "<uuid4>", "occurred_at": "<ISO-8601 with offset>", "source": "...",
     "contact": {"email": ..., "firstName": ..., "lastName": ..., "phone": ...,
                 "fieldValues": [{"field": "6" | "%PERSTAG%" | "<title>", "value": "..."}],
                 "tags": {"<name>": true | false},
                 "lists": {"<id or name>": "subscribed" | "unsubscribed"},
                 "account": "<name>" | ""}}

Producers write v2. Workers also accept v1, which a rolling upgrade leaves in the stream:
the same envelope with ``"v": 1``, whose contact names fields by id only and has no
``tags``, ``lists`` or ``account``. A v1 contact is a valid v2 contact with the same meaning.

Inside the worker an event becomes a ``ContactEvent`` whose ``attributes`` map flat names
to strings, the unit of last-write-wins merging: ``firstName``, ``lastName``, ``phone``,
``field:<ref>``, ``tag:<name>`` (``1`` adds, ``0`` removes), ``list:<ref>`` (``1``
subscribed, ``2`` unsubscribed) and ``account`` (a name, ``""`` unlinks). References are
as written, normalized; the worker resolves them through its catalogs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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
    "attributes_to_event_contact",
    "decode_event",
    "encode_event",
    "normalize_contact",
    "sync_contact_body",
]

WIRE_VERSION = 2  # what encode_event writes
WIRE_VERSIONS = (1, 2)  # what decode_event accepts
MAX_EVENT_BYTES = 64 * 1024
MAX_TEXT = 255
MAX_FIELD_VALUES = 500
# Each tag and list is an API request of its own: bounded like fieldValues.
MAX_TAGS = 500
MAX_LISTS = 500
FIELD_PREFIX = "field:"
TAG_PREFIX = "tag:"
LIST_PREFIX = "list:"
ACCOUNT = "account"
# ActiveCampaign's own contactList status codes: 1 active (subscribed), 2 unsubscribed.
LIST_STATUS_CODES = {"subscribed": "1", "unsubscribed": "2"}
TAG_FLAGS = {True: "1", False: "0"}
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


# -- references and names: plain functions, so the fast path applies the very same rules --


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _positive_id(value: Any, what: str) -> str:
    """An id below 2**63, given as an int or a string of ASCII digits, as its decimal digits."""
    message = f"{what} id must be a positive integer."
    if isinstance(value, bool):
        raise ValidationError(message)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _is_digits(value.strip()):
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


def _field_id(value: Any) -> str:
    """A v1 field reference: a custom field id only."""
    return _positive_id(value, "Field")


# C0 and C1 controls and DEL: no ActiveCampaign name holds one, and they garble logs.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _name(value: Any, what: str) -> str:
    """A name (tag, list, account, field title): trimmed, 1 to 255 characters, no controls."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string.")
    if not _is_unicode_text(value):
        raise ValidationError(_NOT_UNICODE)
    name = value.strip()
    if not name:
        raise ValidationError(f"{what} must not be blank.")
    if len(name) > MAX_TEXT:
        raise ValidationError(f"{what} is longer than maximum length {MAX_TEXT}.")
    if _CONTROL_CHARS.search(name):
        raise ValidationError(f"{what} must not contain control characters.")
    return name


_PERSTAG = re.compile(r"%[A-Za-z0-9_]+%")


def _field_reference(value: Any) -> str:
    """A v2 field reference, normalized: an id's digits, ``%PERSTAG%`` upper-cased, or a
    title, trimmed. Digits always mean an id, and ``%...%`` always a perstag."""
    if isinstance(value, int) or (isinstance(value, str) and _is_digits(value.strip())):
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
    return _name(value, "Field title")


def _list_reference(value: Any) -> str:
    """A list's id (an int or digits) as its digits, or its name, trimmed."""
    if isinstance(value, int) or (isinstance(value, str) and _is_digits(value.strip())):
        return _positive_id(value, "List")
    return _name(value, "List name")


def _tag_changes(value: Any) -> dict[str, bool]:
    """Tag name -> True (add) or False (remove); names trimmed and distinct ignoring case."""
    return _changes(
        value,
        noun="Tag",
        shape="an object of tag name to true (add) or false (remove)",
        limit=MAX_TAGS,
        key=_tag_name,
        item=_flag,
    )


def _list_changes(value: Any) -> dict[str, str]:
    """List id or name -> "subscribed" or "unsubscribed"; ids as digits, names trimmed."""
    return _changes(
        value,
        noun="List",
        shape='an object of list id or name to "subscribed" or "unsubscribed"',
        limit=MAX_LISTS,
        key=_list_reference,
        item=_subscription,
    )


def _tag_name(value: Any) -> str:
    return _name(value, "Tag name")


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


def _account(value: Any) -> str:
    """The contact's account (company) name, trimmed; "" unlinks the contact."""
    return "" if value == "" and type(value) is str else _name(value, "Account name")


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


class FieldValueSchemaV1(Schema):
    class Meta:
        unknown = RAISE

    field = Checked(_field_id, required=True)
    value = CustomFieldValue(required=True, allow_none=False)


class FieldValueSchema(FieldValueSchemaV1):
    field = Checked(_field_reference, required=True)


class ContactSchemaV1(Schema):
    """A v1 contact: fields by id only; no tags, lists or account."""

    class Meta:
        unknown = RAISE

    email = NormalizedEmail(required=True)
    firstName = Text(validate=validate.Length(max=MAX_TEXT))
    lastName = Text(validate=validate.Length(max=MAX_TEXT))
    phone = Text(validate=validate.Length(max=MAX_TEXT))
    fieldValues = fields.List(
        fields.Nested(FieldValueSchemaV1), validate=validate.Length(max=MAX_FIELD_VALUES)
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
        # Normalized references: ids are digits, perstags upper case; titles match in any case.
        seen: set[str] = set()
        for item in data.get("fieldValues", []):
            if item["field"].casefold() in seen:
                raise ValidationError(
                    f"Custom field {item['field']} appears more than once.", "fieldValues"
                )
            seen.add(item["field"].casefold())


class ContactSchema(ContactSchemaV1):
    """A v2 contact: fields by id, %PERSTAG% or title, and tags, lists and account."""

    fieldValues = fields.List(
        fields.Nested(FieldValueSchema), validate=validate.Length(max=MAX_FIELD_VALUES)
    )
    tags = Checked(_tag_changes)
    lists = Checked(_list_changes)
    account = Checked(_account)


def _is_v1(document: Any) -> bool:
    return isinstance(document, Mapping) and type(document.get("v")) is int and document["v"] == 1


class VersionedContact(fields.Field[dict[str, Any]]):
    """The event's contact, by the rules of the event's version: v1's for ``"v": 1``, the
    current ones otherwise (a bad ``v`` is reported on its own)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        schema = _contact_schema_v1 if _is_v1(data) else _contact_schema
        loaded: dict[str, Any] = schema.load(value)
        return loaded


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

    v = fields.Integer(required=True, strict=True, validate=validate.OneOf(WIRE_VERSIONS))
    id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    source = Text(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    contact = VersionedContact(required=True)


class _LenientEnvelope(Schema):
    """Reads just enough of a rejected event to say whose it was in a dead letter."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String()


_contact_schema = ContactSchema()
_contact_schema_v1 = ContactSchemaV1()
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
_CONTACT_KEYS_V1 = frozenset(("email", *_TEXT_ATTRIBUTES, "fieldValues"))
_CONTACT_KEYS = _CONTACT_KEYS_V1 | {"tags", "lists", "account"}
_FIELD_VALUE_KEYS = frozenset(("field", "value"))
_EMAIL = validate.Email()
# The fast path's versions of the schema's checked fields (ContactSchema), in its order.
_CHECKED = (("tags", _tag_changes), ("lists", _list_changes), ("account", _account))


def _plain_contact(
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
    """``fieldValues`` as the schema loads them, or None (see ``_plain_contact``)."""
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
        elif type(ref) is str and _is_digits(ref) and len(ref) <= 19:
            # int() raises ValueError past 4,300 digits; 2**63 has 19. The schema decides.
            number = int(ref)  # digits only: no white space to strip, no sign
            if not 0 < number < 2**63:
                return None
            ref = str(number)
        elif version == 1 or type(ref) is not str:
            return None
        else:
            try:
                ref = _field_reference(ref)
            except ValidationError:
                return None
        if ref.casefold() in seen:
            return None
        seen.add(ref.casefold())
        if (
            type(value) is not str
            or len(value) > MAX_FIELD_VALUE_CHARS
            or not _is_unicode_text(value)
        ):
            return None
        values.append({"field": ref, "value": value})
    return values


_EVENT_KEYS = frozenset(("v", "id", "occurred_at", "source", "contact"))
_REQUIRED_EVENT_KEYS = frozenset(("v", "id", "occurred_at", "contact"))


def _plain_event(document: dict[str, Any]) -> dict[str, Any] | None:
    """What ``EventSchema`` returns for a plainly valid event, or None (see ``_plain_contact``).

    ``occurred_at`` goes through the schema's own field, so dates parse exactly as there.
    """
    if not _REQUIRED_EVENT_KEYS <= document.keys() <= _EVENT_KEYS:
        return None
    version, source = document["v"], document.get("source")
    if type(version) is not int or version not in WIRE_VERSIONS or type(document["id"]) is not str:
        return None
    if source is not None and (
        type(source) is not str or len(source) > MAX_TEXT or not _is_unicode_text(source)
    ):
        return None
    contact = _plain_contact(document["contact"], version=version)
    if contact is None:
        return None
    try:
        event_id = uuid.UUID(document["id"])
        occurred_at = _event_schema.fields["occurred_at"].deserialize(document["occurred_at"])
    except (ValueError, ValidationError):
        return None
    return {"id": event_id, "occurred_at": occurred_at, "source": source, "contact": contact}


def normalize_contact(contact: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an API-shaped (v2) contact dict and return it normalized as the wire holds it.

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
    """Validate a contact change and encode it as a v2 wire event.

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

    Raises InvalidContactEvent for anything that is not a valid v1 or v2 event.
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
    attributes = {name: contact[name] for name in _TEXT_ATTRIBUTES if name in contact}
    for item in contact.get("fieldValues", ()):
        attributes[FIELD_PREFIX + item["field"]] = item["value"]
    if "tags" in contact:
        for name, added in contact["tags"].items():
            attributes[TAG_PREFIX + name] = TAG_FLAGS[added]
    if "lists" in contact:
        for ref, status in contact["lists"].items():
            attributes[LIST_PREFIX + ref] = LIST_STATUS_CODES[status]
    if ACCOUNT in contact:
        attributes[ACCOUNT] = contact[ACCOUNT]
    return attributes


_TAG_VALUES = {code: added for added, code in TAG_FLAGS.items()}
_LIST_STATUSES = {code: status for status, code in LIST_STATUS_CODES.items()}


def attributes_to_event_contact(
    email: str, attributes: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """The v2 wire contact that ``contact_to_attributes`` flattens to ``attributes``.

    For replaying dead letters: every kind of attribute goes back into the event. Raises
    InvalidContactEvent, keyed by attribute name, for a name or value no event could give.
    """
    contact: dict[str, Any] = {"email": email}
    field_values, tags, lists = [], {}, {}
    errors: dict[str, list[str]] = {}
    for name, value in sorted(attributes):
        if name in _TEXT_ATTRIBUTES:
            contact[name] = value
        elif name.startswith(FIELD_PREFIX):
            field_values.append({"field": name[len(FIELD_PREFIX) :], "value": value})
        elif name.startswith(TAG_PREFIX) and value in _TAG_VALUES:
            tags[name[len(TAG_PREFIX) :]] = _TAG_VALUES[value]
        elif name.startswith(LIST_PREFIX) and value in _LIST_STATUSES:
            lists[name[len(LIST_PREFIX) :]] = _LIST_STATUSES[value]
        elif name == ACCOUNT:
            contact[ACCOUNT] = value
        else:
            errors[name] = [f"Not a merge attribute with this value: {value!r}."]
    if errors:
        raise InvalidContactEvent(errors)
    # In the schema's order, so a rebuilt event reads like one a producer wrote.
    account = contact.pop(ACCOUNT, None)
    for key, part in (("fieldValues", field_values), ("tags", tags), ("lists", lists)):
        if part:
            contact[key] = part
    if account is not None:
        contact[ACCOUNT] = account
    return contact


def sync_contact_body(email: str, attributes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The contact object for ``POST /contact/sync``: email, name, phone and fieldValues.

    Tag, list and account attributes are left out: they go through endpoints of their own
    (worker/footprint.py). A ``field:<ref>`` becomes ``{"field": ref}`` as it is, so
    resolve references to ids first. Raises InvalidContactEvent for an unknown name.
    """
    own = [
        (name, value)
        for name, value in attributes
        if name != ACCOUNT and not name.startswith((TAG_PREFIX, LIST_PREFIX))
    ]
    return attributes_to_event_contact(email, own)
