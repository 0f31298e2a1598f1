"""Accounts (companies) and a contact's link to one: `/accounts` and `/accountContacts`.

Documented: `GET /accounts?search=NAME`, `POST /accounts` `{"account": {"name"}}`, and
`POST /accountContacts` `{"accountContact": {"contact", "account", "jobTitle"}}`.
Assumed (see README.md):
- the search is a contains match in any letter case, paged like every listing;
- `POST /accounts` answers 201 `{"account": {...}}`; a name that exists (any letter case)
  is a 422 in the documented errors shape, code "duplicate";
- `POST /accountContacts` answers 201 `{"accountContact": {...}}`; a contact can have one
  account (a third-party integration reports the API refuses a second link), so linking a
  contact that has a link is a 422, code "duplicate": a client moving a contact deletes
  the old link first;
- `GET /accountContacts` takes `filters[contact]` and `filters[account]` (the reference
  does not document them), paged like every listing;
- `DELETE /accountContacts/{id}` answers 200 `{}`, and an unknown id, contact or account
  is a 404 naming "AccountContact", "Subscriber" or "Account", by analogy with the
  documented SubscriberTag message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fake_activecampaign import bodies, schema
from fake_activecampaign.catalogs import AccountRecord, DuplicateName, name_matches
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.inputs import required_input
from fake_activecampaign.links import AccountContact, AlreadyLinked
from fake_activecampaign.paging import listing
from fake_activecampaign.router import Route
from fake_activecampaign.state import AccountState

__all__ = ["AccountEndpoints", "account_body"]


def account_body(account: AccountRecord) -> dict[str, Any]:
    """An account as the API shows it."""
    stamp = bodies.ac_timestamp(account.created_at)
    return {
        "name": account.name,
        "accountUrl": None,
        "createdTimestamp": stamp,
        "updatedTimestamp": stamp,
        "id": account.id,
    }


class AccountEndpoints:
    def __init__(self, *, state: AccountState) -> None:
        self._state = state

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("GET", "/api/3/accounts", self._search),
            Route("POST", "/api/3/accounts", self._create),
            Route("GET", "/api/3/accountContacts", self._links),
            Route("POST", "/api/3/accountContacts", self._link),
            Route("DELETE", "/api/3/accountContacts/{accountContact}", self._unlink),
        )

    def _search(self, request: Request, _params: Mapping[str, str]) -> Reply:
        search = request.query_value("search")
        found = [a for a in self._state.accounts.all() if name_matches(a.name, search)]
        return listing("accounts", found, request, account_body)

    def _create(self, request: Request, _params: Mapping[str, str]) -> Reply:
        parsed = required_input(request.body, "account", ("name",))
        if isinstance(parsed, Reply):
            return parsed
        name = parsed[1]["name"]
        now_s = time.time()
        try:
            account = self._state.accounts.add(lambda id_: AccountRecord(id_, name, now_s))
        except DuplicateName:
            title = "An account with this name already exists"
            return Reply(422, bodies.error_body(title, code="duplicate", attribute="name"))
        return Reply(201, {"account": account_body(account)})

    def _links(self, request: Request, _params: Mapping[str, str]) -> Reply:
        found = self._state.links.account_contacts(
            contact=request.query_value("filters[contact]"),
            account=request.query_value("filters[account]"),
        )
        return listing("accountContacts", found, request, _link_body)

    def _link(self, request: Request, _params: Mapping[str, str]) -> Reply:
        parsed = required_input(request.body, "accountContact", ("contact", "account"))
        if isinstance(parsed, Reply):
            return parsed
        wanted, ids = parsed
        contact_id, account_id = ids["contact"], ids["account"]
        if self._state.contacts.get_by_id(contact_id) is None:
            return Reply(404, bodies.not_found("Subscriber", contact_id))
        if self._state.accounts.get(account_id) is None:
            return Reply(404, bodies.not_found("Account", account_id))
        job_title = schema.text_value(wanted.get("jobTitle")) or ""
        try:
            link = self._state.links.link_account(
                contact=contact_id, account=account_id, job_title=job_title, now_s=time.time()
            )
        except AlreadyLinked:
            title = "The contact is already associated with an account"
            return Reply(422, bodies.error_body(title, code="duplicate", attribute="contact"))
        return Reply(201, {"accountContact": _link_body(link)})

    def _unlink(self, _request: Request, params: Mapping[str, str]) -> Reply:
        link_id = params["accountContact"]
        if self._state.links.unlink_account(link_id) is None:
            return Reply(404, bodies.not_found("AccountContact", link_id))
        return Reply(200, {})


def _link_body(link: AccountContact) -> dict[str, Any]:
    stamp = bodies.ac_timestamp(link.created_at)
    return {
        "account": link.account,
        "contact": link.contact,
        "jobTitle": link.job_title,
        "createdTimestamp": stamp,
        "updatedTimestamp": stamp,
        "id": link.id,
    }
