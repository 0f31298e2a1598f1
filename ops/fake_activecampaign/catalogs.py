"""The account's named records: tags, lists and accounts (companies).

Each kind lives in a `Catalog`: ids are incrementing strings, and names are unique
case-insensitively. That is documented for tags (a name that exists, in any letter case,
is refused); for lists and accounts it is the emulator's assumption (see README.md).
A tag's uniqueness includes its `tagType`, as the observed duplicate error's key
('typetag') shows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = [
    "AccountRecord",
    "Catalog",
    "DuplicateName",
    "ListRecord",
    "TagRecord",
    "name_matches",
]


@dataclass(frozen=True, slots=True)
class TagRecord:
    id: str
    name: str
    tag_type: str  # "contact" unless given
    description: str
    created_at: float  # epoch seconds

    def unique_key(self) -> str:
        return f"{self.tag_type}-{self.name}".casefold()


@dataclass(frozen=True, slots=True)
class ListRecord:
    id: str
    name: str
    stringid: str  # the list's URL-safe name
    created_at: float  # epoch seconds

    def unique_key(self) -> str:
        return self.name.casefold()


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    name: str
    created_at: float  # epoch seconds

    def unique_key(self) -> str:
        return self.name.casefold()


class _Named(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    def unique_key(self) -> str: ...


R = TypeVar("R", bound=_Named)


class DuplicateName(ValueError):
    """A record with that name exists already; `existing` is it."""

    def __init__(self, name: str, existing: _Named) -> None:
        super().__init__(f"duplicate name: {name!r} (exists as {existing.name!r})")
        self.name = name
        self.existing = existing


class Catalog(Generic[R]):
    """Thread-safe records of one kind, in id order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_unlocked()

    def add(self, make: Callable[[str], R]) -> R:
        """Store `make(new id)`. Raises DuplicateName, and then uses up no id."""
        return self.add_all([make])[0]

    def add_all(self, makers: Sequence[Callable[[str], R]]) -> list[R]:
        """Store one record per maker, all or none. Raises DuplicateName."""
        with self._lock:
            taken = {record.unique_key(): record for record in self._records.values()}
            records = []
            for offset, make in enumerate(makers):
                record = make(str(self._next_id + offset))
                existing = taken.get(record.unique_key())
                if existing is not None:
                    raise DuplicateName(record.name, existing)
                taken[record.unique_key()] = record
                records.append(record)
            self._next_id += len(records)
            self._records.update((record.id, record) for record in records)
            return records

    def get(self, record_id: str) -> R | None:
        with self._lock:
            return self._records.get(record_id)

    def all(self) -> list[R]:
        with self._lock:
            return list(self._records.values())

    def reset(self) -> None:
        with self._lock:
            self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self._records: dict[str, R] = {}
        self._next_id = 1


def name_matches(name: str, query: str | None) -> bool:
    """The looser reading of a name search: contained, in any letter case; None matches all.

    Where the reference says only "search"/"filters[name]", the emulator reads it this way:
    a client that does not check the names that come back then fails here, not in production.
    """
    return query is None or query.casefold() in name.casefold()
