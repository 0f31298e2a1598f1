"""The wire format of contact events, shared by producers and the worker: its entry points.

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
to strings, the unit of last-write-wins merging (``worker/event.py``). This module encodes,
decodes and normalizes; the rest of the format lives in its own modules:

- ``worker/wire_schemas.py``: the marshmallow schemas of the envelope and the v1 and v2
  contact, built from the field types in ``worker/wire_fields.py``;
- ``worker/references.py``: ids, names and field and list references;
- ``worker/footprint_checks.py``: a v2 contact's tags, lists and account;
- ``worker/fast_path.py``: plainly valid contacts and events read without marshmallow;
- ``worker/event.py``: ``ContactEvent`` and its flat attributes.

The names other code imports from here are re-exported, so ``from worker.schema import
ContactEvent`` keeps working.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError

from worker.destinations import DESTINATION_ERROR, DESTINATION_NAME
from worker.errors import InvalidContactEvent
from worker.event import (
    ContactEvent,
    attributes_to_event_contact,
    contact_to_attributes,
    sync_contact_body,
)
from worker.fast_path import plain_contact, plain_event
from worker.keys import DEFAULT_DESTINATION
from worker.references import MAX_TEXT, NOT_UNICODE, is_unicode_text
from worker.wire_schemas import (
    WIRE_VERSION,
    ContactSchema,
    ContactSchemaV1,
    EventSchema,
    LenientEnvelope,
    contact_schema,
    event_schema,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "ContactEvent",
    "ContactSchema",
    "ContactSchemaV1",
    "EventSchema",
    "attributes_to_event_contact",
    "contact_to_attributes",
    "decode_event",
    "encode_event",
    "event_id_of",
    "normalize_contact",
    "sync_contact_body",
]

MAX_EVENT_BYTES = 64 * 1024
# Built once: json.dumps() with options builds a new encoder on every call.
_WIRE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def normalize_contact(contact: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an API-shaped (v2) contact dict and return it normalized as the wire holds it.

    Raises InvalidContactEvent with marshmallow's per-field messages.
    """
    plain = plain_contact(contact)
    if plain is not None:
        return plain
    try:
        loaded: dict[str, Any] = contact_schema.load(contact)
    except ValidationError as exc:
        raise InvalidContactEvent(exc.messages) from None
    return loaded


def encode_event(
    contact: Mapping[str, Any],
    *,
    occurred_at: dt.datetime | None = None,
    source: str | None = None,
    event_id: str | None = None,
    destination: str = DEFAULT_DESTINATION,
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
    if not isinstance(destination, str) or not DESTINATION_NAME.fullmatch(destination):
        raise InvalidContactEvent({"destination": [DESTINATION_ERROR]})
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
    if destination != DEFAULT_DESTINATION:  # absent means default: old workers read it too
        document["destination"] = destination
    text = _WIRE_ENCODER.encode(document)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate outside the validated fields (source, id)
        raise InvalidContactEvent({"_event": [NOT_UNICODE]}) from None
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
    return not is_unicode_text(raw) or _SURROGATE_ESCAPE.search(raw) is not None


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
            encodable = is_unicode_text(json.dumps(document, ensure_ascii=False))
        except RecursionError:
            raise InvalidContactEvent({"_event": ["Too deeply nested."]}) from None
        if not encodable:
            raise InvalidContactEvent({"_event": [NOT_UNICODE]})
    loaded = plain_event(document)
    try:
        if loaded is None:
            loaded = event_schema.load(document)
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
        destination=loaded["destination"],
    )


def event_id_of(raw: bytes | str) -> str | None:
    """Best-effort id of a rejected event, for its dead letter."""
    try:
        document = json.loads(raw)
        if isinstance(document, dict):
            ident = LenientEnvelope().load(document).get("id")
            if isinstance(ident, str) and is_unicode_text(ident):
                return ident[:64]
    except (ValueError, RecursionError, ValidationError, TypeError):
        pass
    return None
