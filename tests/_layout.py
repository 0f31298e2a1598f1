"""Reading a contact hash in tests: attribute names for codes, values without their stamps.

An independent reading of the layout described in ``worker/lua/_layout.lua``, so tests
assert on ``p:firstName == "John"`` rather than on bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.stamp import STAMP_BYTES, Order, parse_stamp

__all__ = ["attribute_name", "readable_contact", "stamps"]

_NAMES = {"e": "email", "f": "firstName", "l": "lastName", "p": "phone", "a": "account"}
_KINDS = {"L": "list:", "#": "tag:"}
_STATES = ("p:", "f:", "c:")


def attribute_name(code: str) -> str:
    if code in _NAMES:
        return _NAMES[code]
    if code[:1] in _KINDS:
        return _KINDS[code[:1]] + code[1:]
    return f"field:{code}"


def readable_contact(raw: Mapping[bytes, bytes], email: str) -> dict[str, str]:
    """``{"p:firstName": "John", "m:n": "1", ...}``; the email's (unstored) value is ``email``."""
    readable = {}
    for name_bytes, stored in raw.items():
        name = name_bytes.decode()
        if name.startswith(_STATES):
            code = name[2:]
            value = email if code == "e" else stored[STAMP_BYTES:].decode()
            readable[name[:2] + attribute_name(code)] = value
        else:
            readable[name] = stored.decode()
    return readable


def stamps(raw: Mapping[bytes, bytes]) -> dict[str, Order]:
    """``{"c:firstName": Order(...), ...}``: the stamp of every value in the hash."""
    return {
        name.decode()[:2] + attribute_name(name.decode()[2:]): parse_stamp(stored)
        for name, stored in raw.items()
        if name.decode().startswith(_STATES)
    }
