"""A contact's tags, lists and account, sent after (or without) its ``/contact/sync``.

Each attribute is sent by the requests it needs and confirmed on its own, so a failure
part-way (the sync and one tag succeeded, a list call got a 503) confirms what succeeded and
leaves only the rest for the retry (``finish.lua``). Every request takes a slot from the
shared rate limiter first (``take_slot``), catalog reads and creates included.

Attribute values, as the pump resolved them: ``tag:<lower-case name>`` = ``1<Name>`` (add)
or ``0<Name>`` (remove); ``list:<id>`` = ``1`` (subscribe) or ``2`` (unsubscribe);
``account`` = the company's name, or ``""`` to unlink.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.catalog import Catalog
from worker.errors import ApiRejected
from worker.footprint_api import FootprintApi

__all__ = ["FOOTPRINT_PREFIXES", "Footprint", "Progress", "is_footprint"]

FOOTPRINT_PREFIXES = ("tag:", "list:")


def is_footprint(name: str) -> bool:
    """True for the attributes this module sends: tags, lists and the account."""
    return name == "account" or name.startswith(FOOTPRINT_PREFIXES)


@dataclass(slots=True)
class Progress:
    """What an attempt achieved so far: confirmed attribute names, requests by kind, and
    each footprint attribute's outcome for the log (``tag:trial`` -> ``added``)."""

    contact_id: str | None
    confirmed: list[str] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    steps: dict[str, str] = field(default_factory=dict)


class Footprint:
    """Sends one contact's tag, list and account attributes, one confirmed at a time."""

    def __init__(
        self, api: FootprintApi, catalog: Catalog, *, take_slot: Callable[[str], None]
    ) -> None:
        self.api = api
        self.catalog = catalog
        self._take_slot = take_slot
        self._contact_tags: dict[str, str] | None = None

    def send(self, attributes: dict[str, str], progress: Progress) -> None:
        """Send every attribute, in a fixed order, adding each to ``progress.confirmed``.

        ``progress.contact_id`` must be set. Raises ApiError (or whatever ``take_slot``
        raises) part-way; what was confirmed by then stays in ``progress``.
        """
        contact_id = progress.contact_id
        if contact_id is None:
            raise ValueError("the contact's id is needed before its tags, lists or account")
        self._contact_tags = None
        for name in sorted(attributes):
            try:
                progress.steps[name] = self._send_one(contact_id, name, attributes[name], progress)
            except Exception:
                progress.steps[name] = "failed"
                raise
            progress.confirmed.append(name)

    def _send_one(self, contact_id: str, name: str, value: str, progress: Progress) -> str:
        """Send one attribute; return its outcome as the log shows it."""
        if name.startswith("tag:"):
            add = value[:1] == "1"
            return self._tag(contact_id, value[1:] or name[4:], add=add, progress=progress)
        if name.startswith("list:"):
            self._request("contactLists", progress)
            self.api.set_list_status(contact_id, name[5:], value)
            return "subscribed" if value == "1" else "unsubscribed"
        if name == "account":
            return self._account(contact_id, value, progress)
        raise ValueError(f"not a footprint attribute: {name!r}")

    def _request(self, kind: str, progress: Progress) -> None:
        self._take_slot(kind)
        progress.requests[kind] += 1

    def _tag(self, contact_id: str, name: str, *, add: bool, progress: Progress) -> str:
        if add:
            tag_id = self._find_or_create("tags", name, progress)
            self._request("contactTags", progress)
            self.api.add_tag(contact_id, tag_id)
            return "added"
        known_id = self.catalog.tag_id(name)
        if known_id is None:
            return "absent"  # no such tag in the account: the contact cannot have it
        if self._contact_tags is None:
            self._request("contactTags", progress)
            self._contact_tags = self.api.contact_tags(contact_id)
        link = self._contact_tags.get(known_id)
        if link is None:  # ActiveCampaign never had it: nothing to send
            return "absent"
        self._request("contactTags", progress)
        self.api.remove_tag(link)
        return "removed"

    def _account(self, contact_id: str, name: str, progress: Progress) -> str:
        self._request("accountContacts", progress)
        links = self.api.account_links(contact_id)
        wanted = self._find_or_create("accounts", name, progress) if name else None
        # One account per contact: remove every other link, then link the latest.
        for link_id, account_id in links.items():
            if account_id != wanted:
                self._request("accountContacts", progress)
                self.api.unlink_account(link_id)
        if wanted is None:
            return "unlinked"
        if wanted in links.values():
            return "already_linked"
        self._request("accountContacts", progress)
        self.api.link_account(contact_id, wanted)
        return "linked"

    def _find_or_create(self, kind: str, name: str, progress: Progress) -> str:
        """A tag's or account's id: from the catalog, or created. A create refused because
        the name exists (another worker was first) is answered by looking it up."""
        lookup = self.catalog.tag_id if kind == "tags" else self.catalog.account_id
        found = lookup(name)
        if found is not None:
            return found
        create = self.api.create_tag if kind == "tags" else self.api.create_account
        find = self.api.find_tag if kind == "tags" else self.api.find_account
        self._request(kind, progress)
        try:
            created = create(name)
        except ApiRejected:
            self._request(kind, progress)
            existing = find(name)
            if existing is None:
                raise
            created = existing
        self.catalog.remember("tags" if kind == "tags" else "accounts", created, name)
        return created
