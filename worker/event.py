"""A contact event inside the worker: ``ContactEvent`` and its flat merge attributes.

``decode_event`` (``worker/schema.py``) turns a wire event into a ``ContactEvent`` whose
``attributes`` map flat names to strings, the unit of last-write-wins merging:
``firstName``, ``lastName``, ``phone``, ``field:<ref>``, ``tag:<name>`` (``1`` adds, ``0``
removes), ``list:<ref>`` (``1`` subscribed, ``2`` unsubscribed) and ``account`` (a name,
``""`` unlinks). References are as written, normalized; the worker resolves them through
its catalogs.

This module flattens a normalized wire contact into those attributes and rebuilds one from
them, for replaying dead letters and for the body of ``POST /contact/sync``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.errors import InvalidContactEvent
from worker.keys import DEFAULT_DESTINATION

__all__ = [
    "ACCOUNT",
    "FIELD_PREFIX",
    "LIST_PREFIX",
    "LIST_STATUS_CODES",
    "TAG_FLAGS",
    "TAG_PREFIX",
    "TEXT_ATTRIBUTES",
    "ContactEvent",
    "attributes_to_event_contact",
    "contact_to_attributes",
    "sync_contact_body",
]

FIELD_PREFIX = "field:"
TAG_PREFIX = "tag:"
LIST_PREFIX = "list:"
ACCOUNT = "account"
# ActiveCampaign's own contactList status codes: 1 active (subscribed), 2 unsubscribed.
LIST_STATUS_CODES = {"subscribed": "1", "unsubscribed": "2"}
TAG_FLAGS = {True: "1", False: "0"}
TEXT_ATTRIBUTES = ("firstName", "lastName", "phone")


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One validated change to one contact."""

    id: str
    occurred_at: dt.datetime
    source: str | None
    email: str
    attributes: dict[str, str]
    destination: str = DEFAULT_DESTINATION  # the account it goes to (worker/destinations.py)

    @property
    def occurred_at_us(self) -> int:
        """Microseconds since the epoch: the primary key of last-write-wins ordering."""
        delta = self.occurred_at - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def contact_to_attributes(contact: Mapping[str, Any]) -> dict[str, str]:
    """Flatten a normalized contact into merge attributes (email excluded)."""
    attributes = {name: contact[name] for name in TEXT_ATTRIBUTES if name in contact}
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
        if name in TEXT_ATTRIBUTES:
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
