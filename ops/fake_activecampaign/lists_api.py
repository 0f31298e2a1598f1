"""Lists and subscriptions: `GET /api/3/lists` and `POST /api/3/contactLists`.

Documented: `filters[name]` finds a list by name; status 1 subscribes and 2 unsubscribes,
answered 200 `{"contactList": {...}, "contacts": [...]}`; status 1 re-subscribes a contact
who had unsubscribed (counted in the stats as `resubscribed`, for tests that must prove a
client never does it by accident).
Assumed (see README.md):
- `filters[name]` is a contains match in any letter case, paged like every listing;
- an unknown contact or list is a 404 naming "Subscriber" or "List", by analogy with the
  documented SubscriberTag message;
- a missing attribute, or a status other than 1 or 2, is a 422 in the documented errors
  shape (the API knows other statuses, such as unconfirmed, which the emulator does not
  model);
- unsubscribing a contact that was never on the list records it as unsubscribed;
- the contactList object holds `contact`, `list`, `status` and `id` as strings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fake_activecampaign import bodies
from fake_activecampaign.catalogs import ListRecord, name_matches
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.inputs import required_input
from fake_activecampaign.links import ContactList
from fake_activecampaign.paging import listing
from fake_activecampaign.router import Route
from fake_activecampaign.state import AccountState
from fake_activecampaign.traffic import Traffic

__all__ = ["SUBSCRIBED", "UNSUBSCRIBED", "ListEndpoints", "list_body"]

SUBSCRIBED = 1
UNSUBSCRIBED = 2


def list_body(record: ListRecord) -> dict[str, Any]:
    """A list as the API shows it."""
    return {
        "stringid": record.stringid,
        "name": record.name,
        "cdate": bodies.ac_timestamp(record.created_at),
        "id": record.id,
    }


class ListEndpoints:
    def __init__(self, *, state: AccountState, traffic: Traffic, base_url: str) -> None:
        self._state = state
        self._traffic = traffic
        self._base_url = base_url

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("GET", "/api/3/lists", self._find),
            Route("POST", "/api/3/contactLists", self._set_status),
        )

    def _find(self, request: Request, _params: Mapping[str, str]) -> Reply:
        name = request.query_value("filters[name]")
        found = [record for record in self._state.lists.all() if name_matches(record.name, name)]
        return listing("lists", found, request, list_body)

    def _set_status(self, request: Request, _params: Mapping[str, str]) -> Reply:
        parsed = required_input(request.body, "contactList", ("list", "contact", "status"))
        if isinstance(parsed, Reply):
            return parsed
        ids = parsed[1]
        list_id, contact_id, status = ids["list"], ids["contact"], ids["status"]
        if status not in (str(SUBSCRIBED), str(UNSUBSCRIBED)):
            title = "The status must be 1 (subscribe) or 2 (unsubscribe)"
            return Reply(422, bodies.error_body(title, code="invalid", attribute="status"))
        contact = self._state.contacts.get_by_id(contact_id)
        if contact is None:
            return Reply(404, bodies.not_found("Subscriber", contact_id))
        if self._state.lists.get(list_id) is None:
            return Reply(404, bodies.not_found("List", list_id))
        link, previous = self._state.links.set_list_status(
            contact=contact_id, list_id=list_id, status=int(status), now_s=time.time()
        )
        if previous == UNSUBSCRIBED and link.status == SUBSCRIBED:
            self._traffic.count_resubscribe()
        return Reply(
            200,
            {
                "contactList": _membership_body(link),
                "contacts": [bodies.contact_body(contact, base_url=self._base_url)],
            },
        )


def _membership_body(link: ContactList) -> dict[str, Any]:
    return {"contact": link.contact, "list": link.list, "status": str(link.status), "id": link.id}
