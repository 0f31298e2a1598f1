"""The endpoints for a contact's tags, lists and account: one method per request.

Each method makes exactly one request, so the caller takes one rate-limiter slot per call
(``worker/footprint.py``). Shapes follow reference/activecampaign-api.md; where the API
answers "not found" for something already gone, the method says so instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.client import ActiveCampaignClient
from worker.errors import ApiConfigError, ApiTransportError

__all__ = ["FootprintApi", "ListStatus"]

ListStatus = str  # "1" subscribed, "2" unsubscribed (POST /contactLists)


class FootprintApi:
    def __init__(self, client: ActiveCampaignClient) -> None:
        self.client = client

    # -- contacts -------------------------------------------------------------------------

    def find_contact_id(self, email: str) -> str | None:
        """``GET /contacts?email=``: the id of the contact with exactly this email, or None."""
        body = self.client.call("GET", "/api/3/contacts", params={"email": email})
        for contact in _items(body, "contacts"):
            # Integrations have seen a non-matching first contact come back: check the email.
            if str(contact.get("email", "")).casefold() == email.casefold():
                return str(contact["id"])
        return None

    # -- tags -----------------------------------------------------------------------------

    def find_tag(self, name: str) -> str | None:
        """``GET /tags?search=``: a contains match, so the name is checked here."""
        body = self.client.call("GET", "/api/3/tags", params={"search": name, "limit": 100})
        return _exact(_items(body, "tags"), "tag", name)

    def create_tag(self, name: str) -> str:
        """``POST /tags``; an existing name is refused (422): find it instead."""
        payload = {"tag": {"tag": name, "tagType": "contact", "description": ""}}
        return _id(self.client.call("POST", "/api/3/tags", json=payload), "tag")

    def add_tag(self, contact_id: str, tag_id: str) -> None:
        payload = {"contactTag": {"contact": contact_id, "tag": tag_id}}
        self.client.call("POST", "/api/3/contactTags", json=payload)

    def contact_tags(self, contact_id: str) -> dict[str, str]:
        """``GET /contacts/{id}/contactTags``: tag id -> contactTag id."""
        body = self.client.call("GET", f"/api/3/contacts/{contact_id}/contactTags")
        return {str(item["tag"]): str(item["id"]) for item in _items(body, "contactTags")}

    def remove_tag(self, contact_tag_id: str) -> None:
        """``DELETE /contactTags/{id}``; 404 means it is already gone, which is fine."""
        _unless_gone(lambda: self.client.call("DELETE", f"/api/3/contactTags/{contact_tag_id}"))

    # -- lists ----------------------------------------------------------------------------

    def set_list_status(self, contact_id: str, list_id: str, status: ListStatus) -> None:
        """``POST /contactLists``: status "1" subscribes, "2" unsubscribes."""
        payload = {"contactList": {"list": list_id, "contact": contact_id, "status": status}}
        self.client.call("POST", "/api/3/contactLists", json=payload)

    # -- accounts -------------------------------------------------------------------------

    def find_account(self, name: str) -> str | None:
        body = self.client.call("GET", "/api/3/accounts", params={"search": name, "limit": 100})
        return _exact(_items(body, "accounts"), "name", name)

    def create_account(self, name: str) -> str:
        """``POST /accounts``; an existing name is refused (422): find it instead."""
        return _id(
            self.client.call("POST", "/api/3/accounts", json={"account": {"name": name}}), "account"
        )

    def account_links(self, contact_id: str) -> dict[str, str]:
        """``GET /accountContacts?filters[contact]=``: accountContact id -> account id.

        The filter is used by integrations but not in the reference; the emulator says so too.
        """
        body = self.client.call(
            "GET", "/api/3/accountContacts", params={"filters[contact]": contact_id, "limit": 100}
        )
        return {
            str(item["id"]): str(item["account"])
            for item in _items(body, "accountContacts")
            if str(item.get("contact")) == contact_id
        }

    def link_account(self, contact_id: str, account_id: str) -> None:
        payload = {"accountContact": {"contact": contact_id, "account": account_id}}
        self.client.call("POST", "/api/3/accountContacts", json=payload)

    def unlink_account(self, link_id: str) -> None:
        """``DELETE /accountContacts/{id}``; 404 means it is already gone."""
        _unless_gone(lambda: self.client.call("DELETE", f"/api/3/accountContacts/{link_id}"))


def _items(body: Any, key: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    return [item for item in items or () if isinstance(item, dict) and item.get("id") is not None]


def _exact(items: list[dict[str, Any]], attribute: str, name: str) -> str | None:
    wanted = name.strip().casefold()
    for item in items:
        if str(item.get(attribute, "")).strip().casefold() == wanted:
            return str(item["id"])
    return None


def _id(body: Any, key: str) -> str:
    item = body.get(key) if isinstance(body, dict) else None
    if not isinstance(item, dict) or item.get("id") is None:
        # A 2xx we cannot read: retry it like a broken response.
        raise ApiTransportError(f"answer without a {key} id")
    return str(item["id"])


def _unless_gone(request: Callable[[], object]) -> None:
    try:
        request()
    except ApiConfigError as error:
        if error.status != 404:
            raise
