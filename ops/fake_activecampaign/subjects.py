"""Which contact a request is about, by email: for the request log and the per-email
in-flight peak (`max_in_flight_per_email`).

The sync names it in its body and the lookup in its query; the tag, list and account
endpoints name a contact id, in the body (`{"contactTag": {"contact": "7"}}`), the path
(`/contacts/7/contactTags`), a filter (`filters[contact]=7`) or through the link they
delete. So a client that works on one contact from two places at once shows up in the
peak, whichever endpoints it uses. Ids of contacts that do not exist give None.
"""

from __future__ import annotations

from collections.abc import Mapping

from fake_activecampaign.exchange import Request
from fake_activecampaign.schema import text_value
from fake_activecampaign.state import AccountState

__all__ = ["request_email"]

_LINK_BODIES = ("contactTag", "contactList", "accountContact")


def request_email(
    request: Request, *, params: Mapping[str, str], state: AccountState
) -> str | None:
    """The email of the contact `request` is about, or None. `params` are its route's."""
    body = request.body
    if isinstance(body, dict):
        contact = body.get("contact")
        if isinstance(contact, dict):
            email = contact.get("email")
            return email if isinstance(email, str) and email else None
        for key in _LINK_BODIES:
            link = body.get(key)
            if isinstance(link, dict):
                contact_id = text_value(link.get("contact"))
                return None if contact_id is None else state.email_of(contact_id)
    contact_id = _contact_id(request, params=params, state=state)
    if contact_id is not None:
        return state.email_of(contact_id)
    return request.query_value("email")


def _contact_id(request: Request, *, params: Mapping[str, str], state: AccountState) -> str | None:
    if "contact" in params:
        return params["contact"]
    if "contactTag" in params:
        tag_link = state.links.contact_tag(params["contactTag"])
        return None if tag_link is None else tag_link.contact
    if "accountContact" in params:
        account_link = state.links.account_contact(params["accountContact"])
        return None if account_link is None else account_link.contact
    return request.query_value("filters[contact]")
