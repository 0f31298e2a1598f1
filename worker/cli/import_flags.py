"""The column flags of ``contact-sync import``, checked before any row is read.

``ColumnFlags`` holds them as given; ``ColumnFlags.mapping(fmt)`` turns them into the
RowMapping every row goes through, or raises ImportUsageError naming the flag. The
references of ``--field``, ``--tag`` and ``--list`` are checked and normalized by the
schema itself, so a flag the import accepts is never refused again by every row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from worker.cli.import_mapping import API_ATTRIBUTES, RowMapping
from worker.errors import InvalidContactEvent
from worker.schema import normalize_contact

__all__ = ["ColumnFlags", "ImportUsageError"]


class ImportUsageError(ValueError):
    """The file or the flags cannot work: nothing was imported. The message says why."""


@dataclass(frozen=True, slots=True)
class ColumnFlags:
    """The flags that say which column holds what, as given on the command line.

    ``maps`` holds ``attribute=column``, ``fields`` ``ref=column`` (an id, ``%PERSTAG%`` or
    title), ``tags`` ``name=column`` and ``lists`` ``ref=column`` (an id or name) strings.
    """

    email_column: str | None = None
    maps: Sequence[str] = ()
    fields: Sequence[str] = ()
    tags: Sequence[str] = ()
    tags_column: str | None = None
    tags_separator: str | None = None  # None: "," (RowMapping's default)
    lists: Sequence[str] = ()
    account_column: str | None = None
    occurred_at_column: str | None = None

    def mapping(self, fmt: str) -> RowMapping:
        """The checked mapping for a file of format ``fmt``. Raises ImportUsageError.

        CSV columns named like API attributes (firstName, lastName, phone) map themselves.
        A JSONL file without any flag that names a column (``occurred_at_column`` aside)
        is read as API-shaped contacts.
        """
        attributes = _assignments(self.maps, "--map", "ATTRIBUTE=COLUMN")
        unknown = sorted(set(attributes) - set(API_ATTRIBUTES))
        if unknown:
            raise ImportUsageError(
                f"--map: unknown attribute {', '.join(unknown)}; use {', '.join(API_ATTRIBUTES)} "
                "(the email column is set with --email-column)"
            )
        field_columns = _references(self.fields, "--field", "REF=COLUMN")
        tag_columns = _references(self.tags, "--tag", "NAME=COLUMN")
        list_columns = _references(self.lists, "--list", "REF=COLUMN")
        if self.tags_separator is not None and self.tags_column is None:
            raise ImportUsageError("--tags-separator: only means something with --tags-column")
        if self.tags_separator == "":
            raise ImportUsageError("--tags-separator: must not be empty")
        email_column = self.email_column or "email"
        own_columns = (self.tags_column, self.account_column, self.occurred_at_column)
        required = (
            email_column,
            *attributes.values(),
            *field_columns.values(),
            *tag_columns.values(),
            *list_columns.values(),
            *(column for column in own_columns if column is not None),
        )
        names_a_column = self.email_column is not None or any(
            (self.maps, self.fields, self.tags, self.lists, self.tags_column, self.account_column)
        )
        return RowMapping(
            email_column=email_column,
            attribute_columns={name: name for name in API_ATTRIBUTES} | attributes,
            field_columns=field_columns,
            tag_columns=tag_columns,
            tags_column=self.tags_column,
            tags_separator=self.tags_separator or ",",
            list_columns=list_columns,
            account_column=self.account_column,
            occurred_at_column=self.occurred_at_column,
            passthrough=fmt == "jsonl" and not names_a_column,
            required_columns=tuple(dict.fromkeys(required)),
        )


def _assignments(texts: Sequence[str], flag: str, shape: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for text in texts:
        name, equals, column = text.partition("=")
        if not equals or not name.strip() or not column:
            raise ImportUsageError(f"{flag}: expected {shape}, got {text!r}")
        if name.strip() in pairs:
            raise ImportUsageError(f"{flag}: {name.strip()} is mapped more than once")
        pairs[name.strip()] = column
    return pairs


class _Kind(NamedTuple):
    """How to have the schema check one reference: a contact part holding it, and where
    the normalized reference is in what the schema returns."""

    noun: str
    probe: Callable[[str], dict[str, Any]]
    normalized: Callable[[Mapping[str, Any]], str]


_KINDS = {
    "--field": _Kind(
        "custom field",
        lambda ref: {"fieldValues": [{"field": ref, "value": ""}]},
        lambda contact: str(contact["fieldValues"][0]["field"]),
    ),
    "--tag": _Kind(
        "tag", lambda ref: {"tags": {ref: True}}, lambda contact: str(next(iter(contact["tags"])))
    ),
    "--list": _Kind(
        "list",
        lambda ref: {"lists": {ref: "subscribed"}},
        lambda contact: str(next(iter(contact["lists"]))),
    ),
}
# Any valid address: the probe contact is checked, never written.
_PROBE_EMAIL = "probe@example.com"


def _references(texts: Sequence[str], flag: str, shape: str) -> dict[str, str]:
    """``ref=column`` flags as {normalized reference: column}. Two references the schema
    would take as one (``6`` and ``06``, titles or names in another case) are refused."""
    kind = _KINDS[flag]
    columns: dict[str, str] = {}
    written: dict[str, str] = {}  # normalized reference, case-folded -> as written
    for ref, column in _assignments(texts, flag, shape).items():
        try:
            normalized = kind.normalized(
                normalize_contact({"email": _PROBE_EMAIL, **kind.probe(ref)})
            )
        except InvalidContactEvent as exc:
            raise ImportUsageError(f"{flag}: {ref}: {' '.join(_leaves(exc.messages))}") from None
        folded = normalized.casefold()
        if folded in written:
            raise ImportUsageError(
                f"{flag}: {written[folded]} and {ref} are the same {kind.noun}; map each only once"
            )
        written[folded] = ref
        columns[normalized] = column
    return columns


def _leaves(messages: Any) -> Iterator[str]:
    """The messages alone, without the keys marshmallow nests them under."""
    if isinstance(messages, Mapping):
        for value in messages.values():
            yield from _leaves(value)
    elif isinstance(messages, list | tuple):
        for value in messages:
            yield from _leaves(value)
    else:
        yield str(messages)
