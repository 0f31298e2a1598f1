"""What `POST /api/3/import/bulk_import` accepts, checked before anything is queued.

Documented (reference, "Bulk import"): the snake_case body `{"contacts": [{"email",
"first_name", "last_name", "phone", "customer_acct_name", "tags": [names], "fields": [{"id",
"value"}], "subscribe": [{"listid"}], "unsubscribe": [{"listid"}]}], "callback": {...}}`;
at most 250 contacts and 399,999 bytes per request; a refusal is HTTP 400 `{"success": 0,
"message", "failureReasons"}`, and validation failures list `{"contact": INDEX,
"failureReason"}` and queue nothing.
Assumed (see README.md): which problems are refused (an empty `contacts`, a contact without
a valid email, attributes of unusable types), every message text, and `failureReasons: []`
for refusals of the whole request. Keys the endpoint does not document are ignored and
counted, as `/contact/sync` does; `callback` is accepted and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fake_activecampaign import schema

__all__ = [
    "BULK_ATTRIBUTES",
    "MAX_BULK_BODY_BYTES",
    "MAX_BULK_CONTACTS",
    "BulkContact",
    "BulkRefused",
    "bulk_log_body",
    "contact_count",
    "parse_bulk_import",
]

MAX_BULK_CONTACTS = 250
MAX_BULK_BODY_BYTES = 399_999
BULK_ATTRIBUTES = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "phone",
        "customer_acct_name",
        "tags",
        "fields",
        "subscribe",
        "unsubscribe",
    }
)
# The store names the sync's camelCase attributes; bulk sends them in snake_case.
_TEXT_ATTRIBUTES = {"first_name": "firstName", "last_name": "lastName", "phone": "phone"}


@dataclass(frozen=True, slots=True)
class BulkContact:
    """One valid contact of a bulk import. Absent attributes leave the stored ones alone."""

    sync: schema.SyncInput  # email, first/last name, phone and field values, as a sync has them
    tags: tuple[str, ...]  # names; created when missing
    subscribe: tuple[str, ...]  # list ids
    unsubscribe: tuple[str, ...]  # list ids
    account_name: str | None  # customer_acct_name; None when absent or blank
    blank_values: int  # attributes and field values sent as "" or null
    ignored_attributes: int  # keys the endpoint does not document

    @property
    def email(self) -> str:
        return self.sync.email


class BulkRefused(ValueError):
    """The request is refused as a whole: HTTP 400 with `body()`; nothing is queued."""

    def __init__(self, message: str, failure_reasons: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.failure_reasons = failure_reasons or []

    def body(self) -> dict[str, Any]:
        return {"success": 0, "message": self.message, "failureReasons": self.failure_reasons}


class _BadContact(ValueError):
    """One contact's failureReason."""


def contact_count(body: Any) -> int | None:
    """How many contacts the body holds, or None when it holds no `contacts` list."""
    contacts = body.get("contacts") if isinstance(body, dict) else None
    return len(contacts) if isinstance(contacts, list) else None


def parse_bulk_import(body: Any, *, body_bytes: int | None) -> list[BulkContact]:
    """The contacts of a bulk import body of `body_bytes` bytes on the wire.

    Raises BulkRefused. When the wire size is unknown, the body's size as Python's
    `json.dumps` writes it (what `requests` sends) stands in for it.
    """
    if body_bytes is None:
        body_bytes = len(json.dumps(body).encode())
    if body_bytes > MAX_BULK_BODY_BYTES:
        raise BulkRefused(f"Request size exceeds the limit of {MAX_BULK_BODY_BYTES} bytes.")
    count = contact_count(body)
    if count is None:
        raise BulkRefused('The request body must be {"contacts": [...]}.')
    if count == 0:
        raise BulkRefused("No contacts to import.")
    if count > MAX_BULK_CONTACTS:
        raise BulkRefused(f"Too many contacts: at most {MAX_BULK_CONTACTS} per request.")
    contacts, reasons = [], []
    for index, raw in enumerate(body["contacts"]):
        try:
            contacts.append(_contact(raw))
        except _BadContact as exc:
            reasons.append({"contact": index, "failureReason": str(exc)})
    if reasons:
        raise BulkRefused("Contact validation failed.", reasons)
    return contacts


def bulk_log_body(body: Any) -> Any:
    """What the request log keeps of a bulk body: its size in contacts and their emails.

    A full body can be 400 kB, and the log keeps 20,000 entries.
    """
    contacts = body.get("contacts") if isinstance(body, dict) else None
    if not isinstance(contacts, list):
        return body
    emails = [c.get("email") if isinstance(c, dict) else None for c in contacts]
    return {"contacts": len(contacts), "emails": emails}


def _contact(raw: Any) -> BulkContact:
    if not isinstance(raw, dict):
        raise _BadContact("The contact must be an object.")
    problem = schema.email_problem(raw.get("email"))
    if problem is not None:
        raise _BadContact(problem.title)
    sync_shaped: dict[str, Any] = {"email": raw["email"]}
    for snake, camel in _TEXT_ATTRIBUTES.items():
        if snake in raw:
            sync_shaped[camel] = raw[snake]
    if "fields" in raw:
        sync_shaped["fieldValues"] = _field_values(raw["fields"])
    try:
        sync = schema.parse_contact(sync_shaped)
    except schema.BadSyncBody as exc:
        raise _BadContact("first_name, last_name, phone and field values must be text.") from exc
    account_name = raw.get("customer_acct_name")
    if account_name is not None and not isinstance(account_name, str):
        raise _BadContact("customer_acct_name must be text.")
    blanks = sum(value == "" for value in sync.attributes.values())
    blanks += sum(value == "" for _, value in sync.field_values)
    if account_name is not None and not account_name.strip():
        blanks += 1
    return BulkContact(
        sync=sync,
        tags=_tag_names(raw.get("tags")),
        subscribe=_list_ids(raw.get("subscribe"), "subscribe"),
        unsubscribe=_list_ids(raw.get("unsubscribe"), "unsubscribe"),
        account_name=account_name if account_name and account_name.strip() else None,
        blank_values=blanks,
        ignored_attributes=sum(key not in BULK_ATTRIBUTES for key in raw),
    )


def _field_values(fields: Any) -> list[dict[str, Any]]:
    if not isinstance(fields, list) or not all(
        isinstance(entry, dict) and schema.text_value(entry.get("id")) is not None
        for entry in fields
    ):
        raise _BadContact('fields must be a list of {"id": N, "value": "..."}.')
    return [{"field": entry.get("id"), "value": entry.get("value")} for entry in fields]


def _tag_names(tags: Any) -> tuple[str, ...]:
    if tags is None:
        return ()
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise _BadContact("tags must be a list of tag names.")
    return tuple(tags)


def _list_ids(entries: Any, key: str) -> tuple[str, ...]:
    if entries is None:
        return ()
    ids = []
    if isinstance(entries, list):
        for entry in entries:
            list_id = schema.text_value(entry.get("listid")) if isinstance(entry, dict) else None
            if list_id is None:
                break
            ids.append(list_id)
        else:
            return tuple(ids)
    raise _BadContact(f'{key} must be a list of {{"listid": N}}.')
