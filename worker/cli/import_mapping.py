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


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


@dataclass(frozen=True, slots=True)
class RowMapping:
    """How a record's values become an API-shaped contact.

    With ``passthrough`` the record already is the contact (JSONL rows shaped like the
    API): ``null`` means absent and ``""`` is a real value, as on the wire. Otherwise the
    contact is built from the mapped columns only, and an empty (or blank) cell means
    "absent" (unchanged), not "": CSV cannot tell an unknown value from a cleared one and
    exports write empty cells for both, so a backfill must not wipe what it does not know.
    """

    email_column: str = "email"
    attribute_columns: Mapping[str, str] = field(default_factory=dict)
    field_columns: Mapping[str, str] = field(default_factory=dict)
    occurred_at_column: str | None = None
    passthrough: bool = False
    required_columns: tuple[str, ...] = ()

    def contact(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The contact dict for one record (not validated yet)."""
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
            {"field": field_id, "value": values[column]}
            for field_id, column in self.field_columns.items()
            if _present(values.get(column))
        ]
        if field_values:
            contact["fieldValues"] = field_values
        return contact

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
