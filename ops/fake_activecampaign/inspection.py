"""What the admin API shows tests: each contact's whole footprint and the catalogs' definitions.

These are the emulator's own plain shapes (names rather than ids where a test compares
final state), not ActiveCampaign's.
"""

from __future__ import annotations

from typing import Any

from fake_activecampaign import bodies
from fake_activecampaign.catalogs import AccountRecord, ListRecord, TagRecord
from fake_activecampaign.fields import FieldRecord
from fake_activecampaign.state import AccountState
from fake_activecampaign.store import ContactRecord

__all__ = [
    "account_definition",
    "contact_view",
    "field_definition",
    "list_definition",
    "tag_definition",
]


def contact_view(state: AccountState, contact: ContactRecord) -> dict[str, Any]:
    """`admin_contact` plus `tags` (names, sorted), `lists` ({list id: 1 subscribed or
    2 unsubscribed}) and `account` (the linked account's name, or None)."""
    tag_names = []
    for link in state.links.tags_of(contact.id):
        tag = state.tags.get(link.tag)
        if tag is not None:
            tag_names.append(tag.name)
    account_name = None
    for account_link in state.links.account_contacts(contact=contact.id):
        account = state.accounts.get(account_link.account)
        account_name = None if account is None else account.name
    return {
        **bodies.admin_contact(contact),
        "tags": sorted(tag_names, key=str.casefold),
        "lists": {link.list: link.status for link in state.links.lists_of(contact.id)},
        "account": account_name,
    }


def field_definition(field: FieldRecord) -> dict[str, Any]:
    """`{"id", "title", "perstag", "type", "options": [option values]}`."""
    return {
        "id": field.id,
        "title": field.title,
        "perstag": field.perstag,
        "type": field.type,
        "options": [option.value for option in field.options],
    }


def tag_definition(tag: TagRecord) -> dict[str, Any]:
    return {"id": tag.id, "tag": tag.name, "tagType": tag.tag_type, "description": tag.description}


def list_definition(record: ListRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "stringid": record.stringid}


def account_definition(account: AccountRecord) -> dict[str, Any]:
    return {"id": account.id, "name": account.name}
