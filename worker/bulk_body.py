"""The ``bulk_import`` body: one snake_case entry per contact, and what it cannot say.

Reference (activecampaign-api.md, "Bulk import"): ``{"contacts": [{"email", "first_name",
"last_name", "phone", "customer_acct_name", "tags": [...], "fields": [{"id", "value"}],
"subscribe": [{"listid"}], "unsubscribe": [{"listid"}]}]}``, at most 250 contacts and
399,999 bytes. What an entry cannot express sends the whole change through the sync path:

- a tag removal (bulk import cannot remove tags);
- a blank value (whether ``""`` overwrites is undocumented);
- a company for a contact ActiveCampaign already confirmed: a move must unlink the old
  account, and what ``customer_acct_name`` does to an existing link is undocumented.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_BODY_BYTES", "body_bytes", "bulk_entry", "fit_body"]

MAX_BODY_BYTES = 399_999
_NAMES = {"firstName": "first_name", "lastName": "last_name", "phone": "phone"}


def bulk_entry(email: str, attributes: Mapping[str, str], *, known: bool) -> dict[str, Any] | None:
    """The entry for one contact's change, or None if bulk import cannot express it."""
    entry: dict[str, Any] = {"email": email}
    for name, value in sorted(attributes.items()):
        if name == "email":
            continue
        if value == "":
            return None
        if name in _NAMES:
            entry[_NAMES[name]] = value
        elif name.startswith("field:"):
            entry.setdefault("fields", []).append({"id": int(name[6:]), "value": value})
        elif name.startswith("tag:"):
            if value[:1] != "1":
                return None
            entry.setdefault("tags", []).append(value[1:] or name[4:])
        elif name.startswith("list:"):
            key = "subscribe" if value == "1" else "unsubscribe"
            entry.setdefault(key, []).append({"listid": int(name[5:])})
        elif name == "account" and not known:
            entry["customer_acct_name"] = value
        else:
            return None
    return entry


def body_bytes(entries: list[dict[str, Any]]) -> int:
    """The body's size as requests sends it (``json=``: json.dumps' defaults, ASCII only)."""
    return len(json.dumps({"contacts": entries}).encode("ascii"))


def fit_body(entries: list[dict[str, Any]], *, max_bytes: int = MAX_BODY_BYTES) -> int:
    """How many of ``entries``, from the first, fit in one request of ``max_bytes``."""
    sizes = [len(json.dumps(entry).encode("ascii")) for entry in entries]
    total = len(b'{"contacts": []}')
    for count, size in enumerate(sizes):
        total += size + (2 if count else 0)  # ", " between entries
        if total > max_bytes:
            return count
    return len(entries)
