"""Stamps: the last-write-wins order of an event, as the contact hash stores it.

An event orders by ``occurred_at``, then by its position in the stream. The contact hash
keeps that order next to every value as 17 bytes, big-endian, so bytes compare like the
numbers they hold: occurred_at in µs (7 bytes), the stream entry id's milliseconds (6) and
sequence (4). The Lua side (``worker/lua/_layout.lua``) reads them with ``struct.unpack``.

Dead letters carry the same order in decimal, as a 39-digit ``order_key``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["STAMP_BYTES", "Order", "order_key", "parse_stamp", "stamp"]

STAMP_BYTES = 17
# Lua numbers are doubles: 2**53 µs is the last exact one (in 2255). Milliseconds stop at
# 13 digits (in 2286) so the decimal order key keeps its width.
MAX_OCCURRED_US = 2**53 - 1
MAX_ENTRY_MS = 10**13 - 1
MAX_ENTRY_SEQ = 2**32 - 1


class Order(NamedTuple):
    occurred_at_us: int
    entry_ms: int
    entry_seq: int


def _order(occurred_at_us: int, entry_id: str) -> Order:
    """Clamped parts. Clamped times tie and fall back to the stream position; never invert."""
    millis, _, seq = entry_id.partition("-")
    return Order(
        min(max(occurred_at_us, 0), MAX_OCCURRED_US),
        min(int(millis), MAX_ENTRY_MS),
        min(int(seq or 0), MAX_ENTRY_SEQ),
    )


def stamp(occurred_at_us: int, entry_id: str) -> bytes:
    """The 17-byte stamp of an event: when it occurred, then where it sits in the stream."""
    occurred, millis, seq = _order(occurred_at_us, entry_id)
    return occurred.to_bytes(7, "big") + millis.to_bytes(6, "big") + seq.to_bytes(4, "big")


def parse_stamp(raw: bytes) -> Order:
    """The parts of a stamp (the first 17 bytes of a stored value)."""
    return Order(
        int.from_bytes(raw[:7], "big"),
        int.from_bytes(raw[7:13], "big"),
        int.from_bytes(raw[13:17], "big"),
    )


def order_key(occurred_at_us: int, entry_id: str) -> str:
    """The decimal form dead letters carry: 16 + 13 + 10 digits, sortable as a string."""
    occurred, millis, seq = _order(occurred_at_us, entry_id)
    return f"{occurred:016d}{millis:013d}{seq:010d}"
