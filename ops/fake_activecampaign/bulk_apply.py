"""One queued bulk contact applied to the account: the state changes the other endpoints
would make for it.

In order: the contact is upserted by email with its names, phone and field values (as
`/contact/sync` does), its tags are added (created first when missing, as
`POST /tags` + `POST /contactTags`), it is subscribed, then unsubscribed (as
`POST /contactLists` with status 1, then 2), and `customer_acct_name` links it to the
account of that name, created when missing (as `POST /accounts` + `POST /accountContacts`).
Bulk import never removes a tag.
Assumed (see README.md): a blank attribute or field value overwrites (as in a sync); a
blank `customer_acct_name` changes nothing; a list id the account lacks is skipped and
counted; a contact linked to another account is moved to the named one, keeping its job
title.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import cast

from fake_activecampaign.bulk_input import BulkContact
from fake_activecampaign.catalogs import AccountRecord, Catalog, DuplicateName, TagRecord
from fake_activecampaign.links import AlreadyLinked
from fake_activecampaign.state import AccountState
from fake_activecampaign.traffic import Traffic
from fake_activecampaign.values import value_problem

__all__ = ["AppliedContact", "apply_bulk_contact"]

_SUBSCRIBED = 1
_UNSUBSCRIBED = 2
_TAG_TYPE = "contact"


@dataclass(frozen=True, slots=True)
class AppliedContact:
    contact_id: str
    unknown_lists: int  # list ids skipped because the account has no such list
    moved_account: bool  # the contact was linked to another account before


def apply_bulk_contact(
    state: AccountState, traffic: Traffic, contact: BulkContact, *, now_s: float
) -> AppliedContact:
    """Apply `contact` at epoch `now_s`; sync-like counters go to `traffic`'s stats."""
    outcome = state.contacts.upsert(contact.sync, now_s=now_s)
    unknown = malformed = 0
    for field_id, value in contact.sync.field_values:
        field = state.fields.get(field_id)
        if field is None:
            unknown += 1
        elif value_problem(field, value) is not None:
            malformed += 1
    traffic.count_sync(
        created=outcome.created, unknown_field_values=unknown, malformed_field_values=malformed
    )
    contact_id = outcome.contact.id
    for name in contact.tags:
        tag = _tag_named(state.tags, name, now_s)
        state.links.add_tag(contact=contact_id, tag=tag.id, now_s=now_s)
    unknown_lists = 0
    changes = [(_SUBSCRIBED, list_id) for list_id in contact.subscribe]
    changes += [(_UNSUBSCRIBED, list_id) for list_id in contact.unsubscribe]
    for status, list_id in changes:
        if state.lists.get(list_id) is None:
            unknown_lists += 1
            continue
        _, previous = state.links.set_list_status(
            contact=contact_id, list_id=list_id, status=status, now_s=now_s
        )
        if previous == _UNSUBSCRIBED and status == _SUBSCRIBED:
            traffic.count_resubscribe()
    moved = False
    if contact.account_name is not None:
        moved = _link_account(state, contact_id, contact.account_name, now_s)
    return AppliedContact(contact_id, unknown_lists, moved)


def _link_account(state: AccountState, contact_id: str, name: str, now_s: float) -> bool:
    """Link the contact to the account `name`; True when it moved from another account."""
    account = _account_named(state.accounts, name, now_s)
    job_title = ""
    moved = False
    for link in state.links.account_contacts(contact=contact_id):
        if link.account == account.id:
            return False
        state.links.unlink_account(link.id)
        job_title, moved = link.job_title, True
    # A concurrent POST /accountContacts may have linked it meanwhile; that link stands.
    with suppress(AlreadyLinked):
        state.links.link_account(
            contact=contact_id, account=account.id, job_title=job_title, now_s=now_s
        )
    return moved


def _tag_named(tags: Catalog[TagRecord], name: str, now_s: float) -> TagRecord:
    key = f"{_TAG_TYPE}-{name}".casefold()
    for tag in tags.all():
        if tag.unique_key() == key:
            return tag
    try:
        return tags.add(lambda id_: TagRecord(id_, name, _TAG_TYPE, "", now_s))
    except DuplicateName as exc:  # created by a concurrent request since the look-up
        return cast(TagRecord, exc.existing)


def _account_named(accounts: Catalog[AccountRecord], name: str, now_s: float) -> AccountRecord:
    for account in accounts.all():
        if account.name.casefold() == name.casefold():
            return account
    try:
        return accounts.add(lambda id_: AccountRecord(id_, name, now_s))
    except DuplicateName as exc:  # created by a concurrent request since the look-up
        return cast(AccountRecord, exc.existing)
