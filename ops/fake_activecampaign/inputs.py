"""The request bodies of the creating endpoints: `{"<resource>": {...}}` with required ids
or names.

How the real API refuses a malformed body is documented only in general: 400 (the body may
be `{}`) and 422 for a missing or invalid parameter. The emulator answers 400 `{}` when the
wrapper object is missing and a 422 naming the first missing attribute otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fake_activecampaign import bodies, schema
from fake_activecampaign.exchange import Reply

__all__ = ["required_input"]


def required_input(
    body: Any, key: str, required: Sequence[str]
) -> tuple[dict[str, Any], dict[str, str]] | Reply:
    """(the `key` object, {attribute: its text} for each of `required}`), or the refusal."""
    wanted = schema.wrapped_object(body, key)
    if wanted is None:
        return Reply(400, {})
    values = {}
    for attribute in required:
        value = schema.text_value(wanted.get(attribute))
        if value is None:
            return Reply(422, bodies.missing_field(attribute))
        values[attribute] = value
    return wanted, values
