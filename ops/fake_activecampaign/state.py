"""Everything the emulated ActiveCampaign account holds, in one object the routes share."""

from __future__ import annotations

from dataclasses import dataclass, field

from fake_activecampaign.catalogs import AccountRecord, Catalog, ListRecord, TagRecord
from fake_activecampaign.fields import FieldCatalog
from fake_activecampaign.links import ContactLinks
from fake_activecampaign.store import ContactStore

__all__ = ["AccountState"]


@dataclass(frozen=True, slots=True)
class AccountState:
    """Contacts, the field/tag/list/account catalogs and the links between them.

    Each part is thread-safe on its own; nothing needs two of them changed atomically,
    because contacts and catalog records are never deleted.
    """

    contacts: ContactStore = field(default_factory=ContactStore)
    fields: FieldCatalog = field(default_factory=FieldCatalog)
    tags: Catalog[TagRecord] = field(default_factory=Catalog)
    lists: Catalog[ListRecord] = field(default_factory=Catalog)
    accounts: Catalog[AccountRecord] = field(default_factory=Catalog)
    links: ContactLinks = field(default_factory=ContactLinks)

    def email_of(self, contact_id: str) -> str | None:
        """The email of the contact with API id `contact_id`, or None."""
        contact = self.contacts.get_by_id(contact_id)
        return None if contact is None else contact.email

    def reset(self) -> None:
        """As constructed: no contacts, tags, lists, accounts or links; the default fields."""
        self.contacts.reset()
        self.fields.reset()
        self.tags.reset()
        self.lists.reset()
        self.accounts.reset()
        self.links.reset()
