"""References resolved before the merge: an attribute is what a reference names, not how.

A field named by id in one event and by ``%PERSTAG%`` or title in another is one field,
merged last-write-wins as one; so is a list by id and by name. The pump therefore resolves
every event through the catalogs (``worker/catalog.py``) before the merge store sees it:

- ``field:<ref>`` becomes ``field:<id>``, its value formatted for the field's type
  (``worker/field_values.py``);
- ``list:<ref>`` becomes ``list:<id>``;
- ``tag:<Name>`` becomes ``tag:<lower-case name>`` = flag + ``Name`` (names match
  case-insensitively; the name as last written is kept for creating the tag);
- the name, phone and account pass through.

A reference that does not resolve, or a value the field cannot take, is rejected with its
reason (``unknown_field``, ``unknown_list``, ``invalid_option``, ``invalid_value``) and
dead-lettered as written, so a replay resolves it again once the catalog has it. The rest
of the event is merged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from worker.catalog import Catalog, is_id
from worker.errors import ApiError
from worker.event import ContactEvent
from worker.field_values import InvalidFieldValue, format_value

__all__ = ["Rejected", "Resolved", "Resolver", "Unresolvable"]


class Unresolvable(Exception):
    """The event names a field by perstag or title, or a list by name, and the catalog
    cannot be read now: it stays in the stream and is resolved when it can be."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One attribute as the event wrote it, and why it cannot be merged."""

    name: str
    value: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Resolved:
    event: ContactEvent
    rejected: list[Rejected] = field(default_factory=list)


class Resolver:
    """Resolves events through the catalogs. A catalog read that fails raises ApiError."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def resolve(self, event: ContactEvent) -> Resolved:
        attributes: dict[str, str] = {}
        rejected: list[Rejected] = []
        for name, value in event.attributes.items():
            if name.startswith("field:"):
                try:
                    definition = self.catalog.field(name[6:])
                except ApiError:  # the read failed now (or CatalogUnavailable: moments ago)
                    if not is_id(name[6:]):
                        raise Unresolvable(name) from None
                    # An id needs no catalog to be merged: sent as written, as v1 always was.
                    attributes[name] = value
                    continue
                if definition is None:
                    message = (
                        f"no custom field {name[6:]!r} in the account (by id, %PERSTAG% or title)"
                    )
                    rejected.append(Rejected(name, value, "unknown_field", message))
                    continue
                try:
                    attributes[f"field:{definition.id}"] = format_value(definition, value)
                except InvalidFieldValue as error:
                    rejected.append(Rejected(name, value, error.reason, str(error)))
            elif name.startswith("list:"):
                try:
                    list_id = self.catalog.list_id(name[5:])
                except ApiError:
                    if not is_id(name[5:]):
                        raise Unresolvable(name) from None
                    list_id = name[5:]
                if list_id is None:
                    message = f"no list {name[5:]!r} in the account (by id or name)"
                    rejected.append(Rejected(name, value, "unknown_list", message))
                    continue
                attributes[f"list:{list_id}"] = value
            elif name.startswith("tag:"):
                attributes[f"tag:{name[4:].casefold()}"] = value + name[4:]
            else:
                attributes[name] = value
        if attributes == event.attributes and not rejected:
            return Resolved(event)
        return Resolved(dataclasses.replace(event, attributes=attributes), rejected)
