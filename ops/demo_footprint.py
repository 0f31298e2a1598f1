"""A contact's whole footprint in ``make demo``: fields by %PERSTAG% or title, tags, lists,
and the company (DESIGN.md, Growth 1).

A change keeps its attributes by what they resolve to (``field:<id>``, ``tag:<lower-case
name>``, ``list:<id>``, ``account``), so last write wins is computed per attribute however
each event happened to write the reference; its ``spelling`` says how it wrote them (a field
by id, %PERSTAG% or title, a list by id or name, a tag in some letter case). A few changes
also carry references the account lacks, which the worker must dead-letter while the rest of
the contact syncs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fake_activecampaign import EmulatorClient

__all__ = [
    "COMPANIES",
    "LIST_NAMES",
    "TAGS",
    "UNRESOLVABLE",
    "FootprintTraffic",
    "References",
    "describe",
    "expected_footprint",
    "is_footprint",
    "producer_arguments",
    "requests_alone",
    "stored_footprint",
]

COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries")
LIST_NAMES = ("Newsletter", "Product updates", "Customers", "Beta program")
TAGS = ("trial", "VIP", "churned", "webinar-2026", "onboarded")
_TAG_BY_KEY = {tag.casefold(): tag for tag in TAGS}
STATUSES = ("subscribed", "unsubscribed")
_STATUS_CODES = {1: "subscribed", 2: "unsubscribed"}

# References the emulator's account lacks: the reason their dead letter must give, a label
# for the output, and the producer keywords that carry them.
UNRESOLVABLE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("unknown_field", "field %NICKNAME%", {"fields": {"%NICKNAME%": "Al"}}),
    ("unknown_list", "list Partners", {"lists": {"Partners": "subscribed"}}),
    # Plan is a radio field with the options Free, Pro and Enterprise.
    ("invalid_option", "Plan=Platinum (no such option)", {"fields": {"Plan": "Platinum"}}),
)


class _Spelled(Protocol):
    @property
    def attributes(self) -> Mapping[str, Any]: ...

    @property
    def spelling(self) -> Mapping[str, str | int]: ...


def is_footprint(name: str) -> bool:
    """True for tag, list and account attributes (not sent with ``/contact/sync``)."""
    return name == "account" or name.startswith(("tag:", "list:"))


@dataclass(frozen=True)
class References:
    """How the demo account names things: field id -> (%PERSTAG%, title), list id -> name."""

    fields: Mapping[int, tuple[str, str]]
    lists: Mapping[str, str]

    @classmethod
    def from_emulator(cls, admin: EmulatorClient) -> References:
        """Create the demo's lists (the API cannot) and read the emulator's field catalog."""
        created = admin.define_lists(*LIST_NAMES)
        fields = {
            int(item["id"]): (f"%{item['perstag']}%", item["title"]) for item in admin.fields()
        }
        return cls(fields, {str(item["id"]): item["name"] for item in created})

    def spell(self, rng: random.Random, name: str, *, any_tag_case: bool) -> str | int | None:
        """One way an application might write the reference of attribute ``name``; a tag in
        another letter case only with ``any_tag_case``."""
        if name.startswith("field:"):
            field_id = int(name.removeprefix("field:"))
            return rng.choice((field_id, *self.fields.get(field_id, ())))
        if name.startswith("list:"):
            list_id = name.removeprefix("list:")
            return rng.choice((int(list_id), self.lists[list_id]))
        if name.startswith("tag:"):
            tag = _TAG_BY_KEY[name.removeprefix("tag:")]
            if not any_tag_case:
                return tag
            return rng.choices((tag, tag.lower(), tag.upper()), (8, 1, 1))[0]
        return None


class FootprintTraffic:
    """Seeded footprint changes: tagging, subscriptions and company moves."""

    def __init__(self, rng: random.Random, references: References) -> None:
        self.rng = rng
        self.references = references
        # Off in wave 1: a missing tag is created as the first event that adds it writes it,
        # and a tag called "ONBOARDED" would read oddly in the summary. Wave 2 turns it on.
        self.any_tag_case = False

    def spelling(self, attributes: Mapping[str, Any]) -> dict[str, str | int]:
        """How one event writes each field, list and tag reference among ``attributes``."""
        spelled = {
            name: self.references.spell(self.rng, name, any_tag_case=self.any_tag_case)
            for name in attributes
        }
        return {name: ref for name, ref in spelled.items() if ref is not None}

    def signup(self, company: str) -> dict[str, Any]:
        """What a signup form adds: often the newsletter, a trial tag, the company's account."""
        attributes: dict[str, Any] = {}
        if self.rng.random() < 0.3:
            attributes[self._list("Newsletter")] = "subscribed"
        if self.rng.random() < 0.2:
            attributes["tag:trial"] = True
        if self.rng.random() < 0.15:
            attributes["account"] = company
        return attributes

    def tagging(self) -> dict[str, Any]:
        """An automation adds or removes one or two tags."""
        tags = self.rng.sample(TAGS, self.rng.choices((1, 2), (3, 1))[0])
        return {f"tag:{tag.casefold()}": self.rng.random() < 0.6 for tag in tags}

    def subscription(self) -> dict[str, Any]:
        """A contact subscribes to or unsubscribes from a list."""
        name = self.rng.choice(LIST_NAMES)
        return {self._list(name): self.rng.choices(STATUSES, (3, 1))[0]}

    def company_move(self) -> dict[str, Any]:
        """A contact changes company (the Company field follows), or leaves one: ``""``."""
        company = "" if self.rng.random() < 0.2 else self.rng.choice(COMPANIES)
        return {"account": company, "field:1": company}

    def late(self, sent: Mapping[str, Any]) -> dict[str, Any]:
        """A delayed change to a footprint attribute the contact has: it must lose."""
        names = [name for name in sent if is_footprint(name)]
        if not names:
            return {}
        name = self.rng.choice(names)
        if name == "account":
            return {name: self.rng.choice(("", *COMPANIES))}
        if name.startswith("tag:"):
            return {name: not sent[name]}
        return {name: STATUSES[sent[name] == "subscribed"]}

    def _list(self, name: str) -> str:
        list_id = next(i for i, known in self.references.lists.items() if known == name)
        return f"list:{list_id}"


def producer_arguments(
    attributes: Mapping[str, Any],
    spelling: Mapping[str, str | int],
    unresolvable: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """``contact_changed`` keywords for the fields, tags, lists and account of a change."""
    groups: dict[str, dict[Any, Any]] = {"fields": {}, "tags": {}, "lists": {}}
    for name, value in attributes.items():
        kind = name.partition(":")[0]
        if kind in ("field", "tag", "list"):
            groups[f"{kind}s"][spelling.get(name, name.partition(":")[2])] = value
    for kind, references in unresolvable.items():
        groups[kind].update(references)
    arguments: dict[str, Any] = {kind: refs or None for kind, refs in groups.items()}
    arguments["account"] = attributes.get("account")
    return arguments


def requests_alone(attributes: Mapping[str, Any]) -> int:
    """Requests an event would cost sent on its own, at the least: one ``/contact/sync`` for
    its name, phone and fields, one per tag added or list, two per tag removed (find the
    link, delete it) and two for the account (find the links, link)."""
    count = int(any(not is_footprint(name) for name in attributes))
    for name, value in attributes.items():
        if name.startswith("tag:"):
            count += 1 if value else 2
        elif name.startswith("list:"):
            count += 1
        elif name == "account":
            count += 2
    return count


def expected_footprint(winners: Mapping[str, Any]) -> dict[str, str]:
    """The tags, lists and account that the winning values leave, as text (empty left out)."""
    tags = [name[4:] for name, on in winners.items() if name.startswith("tag:") and on]
    lists = {name[5:]: status for name, status in winners.items() if name.startswith("list:")}
    return _texts(tags, lists, winners.get("account") or "")


def stored_footprint(contact: Mapping[str, Any]) -> dict[str, str]:
    """The emulator contact's tags (any case), lists and account in expected_footprint's form."""
    tags = [tag.casefold() for tag in contact["tags"]]
    lists = {
        str(list_id): _STATUS_CODES.get(code, str(code))
        for list_id, code in contact["lists"].items()
    }
    return _texts(tags, lists, contact.get("account") or "")


def _texts(tags: Iterable[str], lists: Mapping[str, str], account: str) -> dict[str, str]:
    texts = {
        "tags": ", ".join(sorted(tags)),
        "lists": ", ".join(f"{i}={lists[i]}" for i in sorted(lists, key=int)),
        "account": account,
    }
    return {name: text for name, text in texts.items() if text}


def describe(changes: Iterable[_Spelled]) -> list[str]:
    """Two lines: how the changes wrote fields, what they did to tags, lists and accounts."""
    counts: Counter[str] = Counter()
    for change in changes:
        for name, value in change.attributes.items():
            ref = change.spelling.get(name)
            if name.startswith("field:"):
                counts["field " + _field_style(ref)] += 1
            elif name.startswith("tag:"):
                counts["tag added" if value else "tag removed"] += 1
            elif name.startswith("list:"):
                counts[value] += 1
                counts["list by id" if isinstance(ref, int) else "list by name"] += 1
            elif name == "account":
                counts["account set" if value else "account unlinked"] += 1
    return [
        f"fields by id {counts['field id']:,}, by %PERSTAG% {counts['field perstag']:,}, "
        f"by title {counts['field title']:,}; tags {counts['tag added']:,} added, "
        f"{counts['tag removed']:,} removed",
        f"lists {counts['subscribed']:,} subscribed, {counts['unsubscribed']:,} unsubscribed "
        f"({counts['list by name']:,} by name, {counts['list by id']:,} by id); "
        f'companies {counts["account set"]:,} account="<name>", '
        f'{counts["account unlinked"]:,} account=""',
    ]


def _field_style(ref: str | int | None) -> str:
    if ref is None or isinstance(ref, int):
        return "id"
    return "perstag" if ref.startswith("%") else "title"
