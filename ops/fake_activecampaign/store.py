"""The contact store: upsert keyed by the lower-cased email, as `/contact/sync` does.

The email is the identity, never an updatable attribute: a sync with different letter case
updates the same contact and keeps the email it was created with. Times are epoch seconds;
formatting them the ActiveCampaign way is `bodies.py`'s job.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field, replace

from fake_activecampaign.schema import SyncInput

__all__ = ["ContactRecord", "ContactStore", "FieldValueRecord", "SyncOutcome"]


@dataclass(frozen=True, slots=True)
class FieldValueRecord:
    id: str
    field: str
    value: str
    created_at: float  # epoch seconds
    updated_at: float  # epoch seconds


@dataclass(slots=True)
class ContactRecord:
    id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    created_at: float  # epoch seconds
    updated_at: float  # epoch seconds, the last sync
    syncs: int
    field_values: dict[str, FieldValueRecord] = field(default_factory=dict)

    def copy(self) -> ContactRecord:
        return replace(self, field_values=dict(self.field_values))


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    contact: ContactRecord  # a copy, safe to read without the store's lock
    created: bool
    field_values: tuple[FieldValueRecord, ...]  # the ones this sync set, in request order


class ContactStore:
    """Thread-safe contacts. Ids are incrementing strings, as ActiveCampaign's are."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_unlocked()

    def upsert(self, sync: SyncInput, *, now_s: float) -> SyncOutcome:
        """Create or update the contact for `sync.email` at epoch `now_s`."""
        key = sync.email.lower()
        with self._lock:
            record = self._contacts.get(key)
            created = record is None
            if record is None:
                record = ContactRecord(
                    id=str(next(self._contact_ids)),
                    email=sync.email,
                    first_name="",
                    last_name="",
                    phone="",
                    created_at=now_s,
                    updated_at=now_s,
                    syncs=0,
                )
                self._contacts[key] = record
                self._keys_by_id[record.id] = key
            record.first_name = sync.attributes.get("firstName", record.first_name)
            record.last_name = sync.attributes.get("lastName", record.last_name)
            record.phone = sync.attributes.get("phone", record.phone)
            touched = []
            for field_id, value in sync.field_values:
                previous = record.field_values.get(field_id)
                if previous is None:
                    value_record = FieldValueRecord(
                        str(next(self._field_value_ids)), field_id, value, now_s, now_s
                    )
                else:
                    value_record = replace(previous, value=value, updated_at=now_s)
                record.field_values[field_id] = value_record
                touched.append(value_record)
            record.updated_at = now_s
            record.syncs += 1
            return SyncOutcome(record.copy(), created, tuple(touched))

    def get(self, email: str) -> ContactRecord | None:
        """The contact for `email` (any letter case), or None."""
        with self._lock:
            record = self._contacts.get(email.lower())
            return None if record is None else record.copy()

    def get_by_id(self, contact_id: str) -> ContactRecord | None:
        """The contact with API id `contact_id`, or None."""
        with self._lock:
            key = self._keys_by_id.get(contact_id)
            return None if key is None else self._contacts[key].copy()

    def all(self) -> dict[str, ContactRecord]:
        """Every contact keyed by lower-cased email, in creation order."""
        with self._lock:
            return {key: record.copy() for key, record in self._contacts.items()}

    def reset(self) -> None:
        with self._lock:
            self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self._contacts: dict[str, ContactRecord] = {}
        self._keys_by_id: dict[str, str] = {}
        self._contact_ids = itertools.count(1)
        self._field_value_ids = itertools.count(1)
