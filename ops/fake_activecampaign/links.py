"""What ties a contact to the catalogs: its contactTags, contactLists and accountContacts.

Ids are incrementing strings per kind, as the API's are. Contacts and catalog records are
never deleted (the emulator has no endpoint for that), so links never dangle.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace

__all__ = ["AccountContact", "AlreadyLinked", "ContactLinks", "ContactList", "ContactTag"]


@dataclass(frozen=True, slots=True)
class ContactTag:
    id: str
    contact: str
    tag: str
    created_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class ContactList:
    id: str
    contact: str
    list: str
    status: int  # 1 subscribed, 2 unsubscribed
    created_at: float  # epoch seconds
    updated_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class AccountContact:
    id: str
    contact: str
    account: str
    job_title: str
    created_at: float  # epoch seconds


class AlreadyLinked(ValueError):
    """The contact has an account link already; `existing` is it."""

    def __init__(self, existing: AccountContact) -> None:
        super().__init__(f"contact {existing.contact} is linked to account {existing.account}")
        self.existing = existing


class ContactLinks:
    """Thread-safe links. A contact has each tag at most once, one status per list, and at
    most one account link (see README.md for which of these the API documents)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_unlocked()

    def add_tag(self, *, contact: str, tag: str, now_s: float) -> ContactTag:
        """The contact's link to `tag`: a new one, or the one it already has."""
        with self._lock:
            existing = self._tag_by_pair.get((contact, tag))
            if existing is not None:
                return self._tags[existing]
            link = ContactTag(str(next(self._tag_ids)), contact, tag, now_s)
            self._tags[link.id] = link
            self._tag_by_pair[(contact, tag)] = link.id
            self._tag_ids_of.setdefault(contact, {})[link.id] = None
            return link

    def remove_tag(self, link_id: str) -> ContactTag | None:
        with self._lock:
            link = self._tags.pop(link_id, None)
            if link is not None:
                del self._tag_by_pair[(link.contact, link.tag)]
                del self._tag_ids_of[link.contact][link.id]
            return link

    def contact_tag(self, link_id: str) -> ContactTag | None:
        with self._lock:
            return self._tags.get(link_id)

    def tags_of(self, contact: str) -> list[ContactTag]:
        with self._lock:
            return [self._tags[link_id] for link_id in self._tag_ids_of.get(contact, {})]

    def set_list_status(
        self, *, contact: str, list_id: str, status: int, now_s: float
    ) -> tuple[ContactList, int | None]:
        """Record the contact's status on a list: (the membership, the status it had or None).

        The first call creates the membership, whatever the status.
        """
        with self._lock:
            key = (contact, list_id)
            previous = self._lists.get(key)
            if previous is None:
                link = ContactList(
                    str(next(self._list_ids)), contact, list_id, status, now_s, now_s
                )
            else:
                link = replace(previous, status=status, updated_at=now_s)
            self._lists[key] = link
            self._list_keys_of.setdefault(contact, {})[key] = None
            return link, None if previous is None else previous.status

    def lists_of(self, contact: str) -> list[ContactList]:
        with self._lock:
            return [self._lists[key] for key in self._list_keys_of.get(contact, {})]

    def link_account(
        self, *, contact: str, account: str, job_title: str, now_s: float
    ) -> AccountContact:
        """Link the contact to an account. Raises AlreadyLinked when it has a link."""
        with self._lock:
            existing = self._account_link_of.get(contact)
            if existing is not None:
                raise AlreadyLinked(self._accounts[existing])
            link = AccountContact(str(next(self._account_ids)), contact, account, job_title, now_s)
            self._accounts[link.id] = link
            self._account_link_of[contact] = link.id
            return link

    def unlink_account(self, link_id: str) -> AccountContact | None:
        with self._lock:
            link = self._accounts.pop(link_id, None)
            if link is not None:
                del self._account_link_of[link.contact]
            return link

    def account_contact(self, link_id: str) -> AccountContact | None:
        with self._lock:
            return self._accounts.get(link_id)

    def account_contacts(
        self, *, contact: str | None = None, account: str | None = None
    ) -> list[AccountContact]:
        """Account links in id order, narrowed to a contact and/or an account when given."""
        with self._lock:
            if contact is not None:
                link_id = self._account_link_of.get(contact)
                links = [] if link_id is None else [self._accounts[link_id]]
            else:
                links = list(self._accounts.values())
            return [link for link in links if account in (None, link.account)]

    def reset(self) -> None:
        with self._lock:
            self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self._tags: dict[str, ContactTag] = {}
        self._lists: dict[tuple[str, str], ContactList] = {}
        self._accounts: dict[str, AccountContact] = {}
        # Indexes by contact, so no operation scans every link (bulk import adds thousands).
        self._tag_by_pair: dict[tuple[str, str], str] = {}  # (contact, tag) -> link id
        self._tag_ids_of: dict[str, dict[str, None]] = {}  # contact -> link ids, in order
        self._list_keys_of: dict[str, dict[tuple[str, str], None]] = {}
        self._account_link_of: dict[str, str] = {}  # contact -> its one account link id
        self._tag_ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self._account_ids = itertools.count(1)
