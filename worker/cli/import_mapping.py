"""How the columns of an import row become an API-shaped contact, and its time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.errors import InvalidContactEvent

__all__ = ["API_ATTRIBUTES", "RowMapping"]

#: The contact attributes besides the email that columns may map to (``--map``).
API_ATTRIBUTES = ("firstName", "lastName", "phone")

# What a tag or list cell may say, in any case and trimmed. JSON true, false, 1 and 0 read
# the same. A word outside these is an error for the row, never a guess.
_YES, _NO = ("true", "yes", "1"), ("false", "no", "0")
_LIST_STATUSES = {"subscribed": "subscribed", "unsubscribed": "unsubscribed"}
_LIST_STATUSES |= dict.fromkeys(_YES, "subscribed") | dict.fromkeys(_NO, "unsubscribed")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _word(value: Any) -> str:
    """A cell as a word to look up: JSON true reads as "true", 1 as "1"."""
    return str(value).strip().casefold()


@dataclass(frozen=True, slots=True)
class RowMapping:
    """How a record's values become an API-shaped contact.

    With ``passthrough`` the record already is the contact (JSONL rows shaped like the
    API): ``null`` means absent and ``""`` is a real value, as on the wire. Otherwise the
    contact is built from the mapped columns only, and an empty (or blank) cell means
    "absent" (unchanged), not "": CSV cannot tell an unknown value from a cleared one and
    exports write empty cells for both, so a backfill must not wipe what it does not know.
    That holds for tags, lists and the account too: an empty cell leaves them as they are.

    ``field_columns``, ``tag_columns`` and ``list_columns`` map a reference (normalized,
    import_flags) to its column. A ``tag_columns`` cell says true (add) or false (remove);
    a ``tags_column`` cell holds tag names to add, split at ``tags_separator`` (a JSON list
    of names works too); a ``list_columns`` cell says subscribed or unsubscribed (true or
    false also do); an ``account_column`` cell is the company's name.
    """

    email_column: str = "email"
    attribute_columns: Mapping[str, str] = field(default_factory=dict)
    field_columns: Mapping[str, str] = field(default_factory=dict)
    tag_columns: Mapping[str, str] = field(default_factory=dict)
    tags_column: str | None = None
    tags_separator: str = ","
    list_columns: Mapping[str, str] = field(default_factory=dict)
    account_column: str | None = None
    occurred_at_column: str | None = None
    passthrough: bool = False
    required_columns: tuple[str, ...] = ()

    def contact(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The contact dict for one record (not validated yet).

        Raises InvalidContactEvent, keyed by column, for a tag or list cell it cannot read.
        """
        if self.passthrough:
            return {
                name: value
                for name, value in values.items()
                if value is not None and name != self.occurred_at_column
            }
        contact: dict[str, Any] = {}
        for attribute, column in (("email", self.email_column), *self.attribute_columns.items()):
            if _present(values.get(column)):
                contact[attribute] = values[column]
        field_values = [
            {"field": ref, "value": values[column]}
            for ref, column in self.field_columns.items()
            if _present(values.get(column))
        ]
        if field_values:
            contact["fieldValues"] = field_values
        errors: dict[str, list[str]] = {}
        tags, lists = self._tags(values, errors), self._lists(values, errors)
        if errors:
            raise InvalidContactEvent(errors)
        if tags:
            contact["tags"] = tags
        if lists:
            contact["lists"] = lists
        if self.account_column is not None and _present(values.get(self.account_column)):
            contact["account"] = values[self.account_column]
        return contact

    def _tags(self, values: Mapping[str, Any], errors: dict[str, list[str]]) -> dict[str, bool]:
        tags: dict[str, bool] = {}
        spelled: dict[str, str] = {}  # case-folded name -> the name as the row first wrote it
        column = self.tags_column
        if column is not None and _present(values.get(column)):
            names = self._tag_names(values[column])
            if names is None:
                errors[column] = [
                    f"Must be tag names: text separated by {self.tags_separator!r}, "
                    "or a list of strings."
                ]
            for name in names or ():
                if name.casefold() not in spelled:  # "VIP, vip" adds one tag
                    spelled[name.casefold()] = name
                    tags[name] = True
        for name, column in self.tag_columns.items():
            if not _present(values.get(column)):
                continue
            word = _word(values[column])
            if word not in _YES + _NO:
                errors.setdefault(column, []).append(
                    f"Must be true or false (or yes/no, 1/0) to add or remove tag {name}."
                )
            elif word in _NO and tags.get(spelled.get(name.casefold(), name)):
                # Only the tags column adds besides this one; which of the two is right
                # is not for the import to guess.
                errors.setdefault(column, []).append(
                    f"Removes tag {name}, which column {self.tags_column} adds."
                )
            else:
                tags[spelled.get(name.casefold(), name)] = word in _YES
        return tags

    def _tag_names(self, cell: Any) -> list[str] | None:
        """The names in a tags cell, trimmed, empty ones dropped; None if it holds no text."""
        if isinstance(cell, str):
            items: list[Any] = cell.split(self.tags_separator)
        elif isinstance(cell, list):
            items = cell
        else:
            return None
        if not all(isinstance(item, str) for item in items):
            return None
        return [item.strip() for item in items if item.strip()]

    def _lists(self, values: Mapping[str, Any], errors: dict[str, list[str]]) -> dict[str, str]:
        lists: dict[str, str] = {}
        for ref, column in self.list_columns.items():
            if not _present(values.get(column)):
                continue
            status = _LIST_STATUSES.get(_word(values[column]))
            if status is None:
                errors.setdefault(column, []).append(
                    f"Must be subscribed or unsubscribed (or true/false, yes/no, 1/0) "
                    f"for list {ref}."
                )
            else:
                lists[ref] = status
        return lists

    def occurred_at(self, values: Mapping[str, Any], default: dt.datetime) -> dt.datetime:
        """The record's own time from ``occurred_at_column``, else ``default``."""
        column = self.occurred_at_column
        text = None if column is None else values.get(column)
        if column is None or not _present(text):
            return default
        try:
            moment = dt.datetime.fromisoformat(str(text).strip())
        except ValueError:
            raise InvalidContactEvent({column: ["Not an ISO 8601 date-time."]}) from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidContactEvent(
                {column: ["Needs a UTC offset, e.g. 2026-11-29T13:00:00+00:00."]}
            )
        return moment
