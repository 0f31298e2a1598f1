"""`POST /api/3/contact/sync` and `GET /api/3/contacts` (the lookup by email, and paging).

Field values are stored as sent, whatever their field: values for ids the catalog does not
have are counted as `unknown_field_values`, values not in their type's documented form as
`malformed_field_values` (see values.py). The real API's answer to either is undocumented.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fake_activecampaign import bodies, schema
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.faults import Faults
from fake_activecampaign.paging import listing
from fake_activecampaign.router import Route
from fake_activecampaign.state import AccountState
from fake_activecampaign.store import ContactRecord
from fake_activecampaign.traffic import Traffic
from fake_activecampaign.values import value_problem

__all__ = ["ContactEndpoints"]


class ContactEndpoints:
    def __init__(
        self, *, state: AccountState, traffic: Traffic, faults: Faults, base_url: str
    ) -> None:
        self._state = state
        self._traffic = traffic
        self._faults = faults
        self._base_url = base_url

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("POST", "/api/3/contact/sync", self._sync),
            Route("GET", "/api/3/contacts", self._contacts),
        )

    def _sync(self, request: Request, _params: Mapping[str, str]) -> Reply:
        try:
            contact = schema.contact_object(request.body)
        except schema.BadSyncBody:
            return Reply(400, {})
        self._traffic.count_ignored(attributes=len(schema.ignored_attributes(contact)))
        problem = schema.email_problem(contact.get("email"))
        if problem is not None:
            return Reply(422, bodies.errors_body(problem))
        try:
            sync = schema.parse_contact(contact)
        except schema.BadSyncBody:
            return Reply(400, {})
        if self._faults.rejects_email(sync.email):
            return Reply(422, bodies.errors_body(schema.EMAIL_INVALID))
        outcome = self._state.contacts.upsert(sync, now_s=time.time())
        unknown = malformed = 0
        for field_id, value in sync.field_values:
            field = self._state.fields.get(field_id)
            if field is None:
                unknown += 1
            elif value_problem(field, value) is not None:
                malformed += 1
        self._traffic.count_sync(
            created=outcome.created, unknown_field_values=unknown, malformed_field_values=malformed
        )
        return Reply(
            201,
            bodies.sync_body(outcome, base_url=self._base_url),
            delay_s=self._faults.delay_after_store_s(),
        )

    def _contacts(self, request: Request, _params: Mapping[str, str]) -> Reply:
        email = request.query_value("email")
        if email is not None:
            found = self._state.contacts.get(email)
            contacts = [] if found is None else [found]
        else:
            contacts = list(self._state.contacts.all().values())
        return listing("contacts", contacts, request, self._contact_body)

    def _contact_body(self, contact: ContactRecord) -> dict[str, Any]:
        return bodies.contact_body(contact, base_url=self._base_url)
