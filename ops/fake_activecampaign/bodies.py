"""Response bodies shaped like ActiveCampaign's (reference/sync-a-contact.seed.txt).

Every contact key of the seed's response is present, in the seed's order, with the seed's
placeholder values for the ones this emulator does not model (bounces, ratings, ...).
Timestamps use the seed's ISO form with an explicit offset; the emulator works in UTC,
so the offset is always "+00:00".
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fake_activecampaign.schema import EMAIL_INVALID, EmailProblem
from fake_activecampaign.store import ContactRecord, FieldValueRecord, SyncOutcome

__all__ = [
    "FORBIDDEN",
    "NOT_FOUND",
    "SERVICE_UNAVAILABLE",
    "TOO_MANY_REQUESTS",
    "ac_timestamp",
    "admin_contact",
    "contact_body",
    "error_body",
    "errors_body",
    "missing_field",
    "not_found",
    "status_body",
    "sync_body",
]

FORBIDDEN = {"message": "You do not have permission to perform this action"}
NOT_FOUND = {"message": "No Result found"}
TOO_MANY_REQUESTS = {"message": "Too Many Requests"}
SERVICE_UNAVAILABLE = {"message": "Service Unavailable"}

_CONTACT_LINKS = (
    "bounceLogs",
    "contactAutomations",
    "contactData",
    "contactGoals",
    "contactLists",
    "contactLogs",
    "contactTags",
    "contactDeals",
    "deals",
    "fieldValues",
    "geoIps",
    "notes",
    "organization",
    "plusAppend",
    "trackingLogs",
    "scoreValues",
)


def ac_timestamp(epoch_s: float) -> str:
    """Epoch seconds as the API writes times: "2020-08-01T10:54:59+00:00" (UTC)."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="seconds")


def _utc_timestamp(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def contact_body(contact: ContactRecord, *, base_url: str) -> dict[str, Any]:
    """One contact as the API shows it (the `contact` object of the seed's response)."""
    links_base = f"{base_url}/api/3/contacts/{contact.id}"
    return {
        "cdate": ac_timestamp(contact.created_at),
        "email": contact.email,
        "phone": contact.phone,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "orgid": "0",
        "segmentio_id": "",
        "bounced_hard": "0",
        "bounced_soft": "0",
        "bounced_date": "0000-00-00",
        "ip": "0",
        "ua": "",
        "hash": "",
        "socialdata_lastcheck": "0000-00-00 00:00:00",
        "email_local": "",
        "email_domain": "",
        "sentcnt": "0",
        "rating_tstamp": "0000-00-00",
        "gravatar": "0",
        "deleted": "0",
        "anonymized": "0",
        "udate": ac_timestamp(contact.updated_at),
        "deleted_at": "0000-00-00 00:00:00",
        "created_utc_timestamp": _utc_timestamp(contact.created_at),
        "updated_utc_timestamp": _utc_timestamp(contact.updated_at),
        "links": {name: f"{links_base}/{name}" for name in _CONTACT_LINKS},
        "id": contact.id,
        "organization": None,
    }


def _field_value_body(value: FieldValueRecord, *, contact_id: str, base_url: str) -> dict[str, Any]:
    links_base = f"{base_url}/api/3/fieldValues/{value.id}"
    return {
        "contact": contact_id,
        "field": value.field,
        "value": value.value,
        "cdate": ac_timestamp(value.created_at),
        "udate": ac_timestamp(value.updated_at),
        "links": {"owner": f"{links_base}/owner", "field": f"{links_base}/field"},
        "id": value.id,
        "owner": contact_id,
    }


def sync_body(outcome: SyncOutcome, *, base_url: str) -> dict[str, Any]:
    """The 201 body of `POST /api/3/contact/sync`: one fieldValues entry per field sent."""
    contact_id = outcome.contact.id
    return {
        "fieldValues": [
            _field_value_body(value, contact_id=contact_id, base_url=base_url)
            for value in outcome.field_values
        ],
        "contact": contact_body(outcome.contact, base_url=base_url),
    }


def error_body(title: str, *, code: str, attribute: str) -> dict[str, Any]:
    """The documented 422 shape, `{"errors": [{"title", "detail", "code", "source"}]}`."""
    pointer = f"/data/attributes/{attribute}"
    return {
        "errors": [{"title": title, "detail": "", "code": code, "source": {"pointer": pointer}}]
    }


def errors_body(problem: EmailProblem) -> dict[str, Any]:
    """The documented 422 for a contact's email."""
    return error_body(problem.title, code=problem.code, attribute="email")


def missing_field(attribute: str) -> dict[str, Any]:
    """A 422 for a required attribute that is absent or blank.

    Only the shape is documented; the title and code follow the documented email error.
    """
    return error_body(
        f"The {attribute} field is required", code="field_missing", attribute=attribute
    )


def not_found(entity: str, record_id: str) -> dict[str, Any]:
    """A 404 body; documented for SubscriberTag, used by analogy for the other entities."""
    return {"message": f"No Result found for {entity} with id {record_id}"}


def status_body(status: int) -> dict[str, Any]:
    """A plausible body for a forced status; the real API documents only 400's and 422's."""
    known: dict[int, dict[str, Any]] = {
        400: {},
        403: FORBIDDEN,
        404: NOT_FOUND,
        422: errors_body(EMAIL_INVALID),
        429: TOO_MANY_REQUESTS,
        503: SERVICE_UNAVAILABLE,
    }
    if status in known:
        return dict(known[status])
    try:
        return {"message": HTTPStatus(status).phrase}
    except ValueError:
        return {"message": f"Error {status}"}


def admin_contact(contact: ContactRecord) -> dict[str, Any]:
    """A contact as the admin API shows it: attributes, `{field id: value}`, epoch times."""
    return {
        "id": contact.id,
        "email": contact.email,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "phone": contact.phone,
        "fieldValues": {field_id: fv.value for field_id, fv in contact.field_values.items()},
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "syncs": contact.syncs,
    }
