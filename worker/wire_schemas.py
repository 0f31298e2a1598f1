"""marshmallow schemas of the wire format: the event envelope and its v1 and v2 contacts.

``EventSchema`` reads the envelope and its ``contact`` by the rules of the event's ``v``:
``ContactSchemaV1`` names fields by id only and has no tags, lists or account;
``ContactSchema`` (v2) names fields by id, ``%PERSTAG%`` or title and adds ``tags``,
``lists`` and ``account``. ``worker/schema.py`` describes the format and holds the entry
points (``encode_event``, ``decode_event``, ``normalize_contact``) that use these.
"""

from __future__ import annotations

from collections.abc import Mapping
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

from worker.destinations import DESTINATION_ERROR, DESTINATION_NAME
from worker.footprint_checks import account_name, list_changes, tag_changes
from worker.keys import DEFAULT_DESTINATION
from worker.references import MAX_TEXT, field_id, field_reference
from worker.wire_fields import Checked, CustomFieldValue, NormalizedEmail, Text

__all__ = [
    "MAX_FIELD_VALUES",
    "WIRE_VERSION",
    "WIRE_VERSIONS",
    "ContactSchema",
    "ContactSchemaV1",
    "EventSchema",
    "FieldValueSchema",
    "FieldValueSchemaV1",
    "LenientEnvelope",
    "VersionedContact",
    "contact_schema",
    "contact_schema_v1",
    "event_schema",
]

WIRE_VERSION = 2  # what encode_event writes
WIRE_VERSIONS = (1, 2)  # what decode_event accepts
MAX_FIELD_VALUES = 500
_DEPRECATED = {
    "orgid": "orgid is deprecated: contact-organization links moved to ActiveCampaign's "
    "Account-Contact endpoints and cannot be set through contact sync.",
    "deleted": "deleted is deprecated: contacts are deleted with DELETE, not through sync.",
}


class FieldValueSchemaV1(Schema):
    class Meta:
        unknown = RAISE

    field = Checked(field_id, required=True)
    value = CustomFieldValue(required=True, allow_none=False)


class FieldValueSchema(FieldValueSchemaV1):
    field = Checked(field_reference, required=True)


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
    tags = Checked(tag_changes)
    lists = Checked(list_changes)
    account = Checked(account_name)


def _is_v1(document: Any) -> bool:
    return isinstance(document, Mapping) and type(document.get("v")) is int and document["v"] == 1


class VersionedContact(fields.Field[dict[str, Any]]):
    """The event's contact, by the rules of the event's version: v1's for ``"v": 1``, the
    current ones otherwise (a bad ``v`` is reported on its own)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        schema = contact_schema_v1 if _is_v1(data) else contact_schema
        loaded: dict[str, Any] = schema.load(value)
        return loaded


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

    v = fields.Integer(required=True, strict=True, validate=validate.OneOf(WIRE_VERSIONS))
    id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    source = Text(load_default=None, allow_none=True, validate=validate.Length(max=MAX_TEXT))
    destination = fields.String(
        load_default=DEFAULT_DESTINATION,
        validate=validate.Regexp(DESTINATION_NAME, error=DESTINATION_ERROR),
    )
    contact = VersionedContact(required=True)


class LenientEnvelope(Schema):
    """Reads just enough of a rejected event to say whose it was in a dead letter."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String()


# Built once and shared: by the entry points, the fast path and VersionedContact.
contact_schema = ContactSchema()
contact_schema_v1 = ContactSchemaV1()
event_schema = EventSchema()
