"""Text for people: aligned tables, ages, compact messages, dead letters and status.

Everything printed as text goes through ``printable()``: dead letters hold whatever a
producer sent, and a raw event must not be able to move the cursor or retitle the terminal.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from worker.deadletters import DeadLetter

__all__ = [
    "age",
    "compact_errors",
    "letter_text",
    "letters_table",
    "message_lines",
    "printable",
    "status_text",
    "table",
    "to_json",
]

NONE = "-"
_ERRORS_WIDTH = 60
# C0 and C1 control characters and DEL; tabs and newlines too, since a cell is one line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``); keeps newlines if asked."""
    pattern = _CONTROL_BUT_NEWLINE if multiline else _CONTROL
    return pattern.sub(lambda match: repr(match.group())[1:-1], text)


def to_json(value: Any) -> str:
    """Indented JSON for ``--json`` output; dates and other odd values become strings."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def age(seconds: float | None) -> str:
    """A duration for people: ``3.2s``, ``4m 10s``, ``2h 5m``, ``3d 4h``; ``-`` for None."""
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a header line."""
    lines = [list(headers), *([printable(cell) for cell in row] for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


#: Where ``status_text`` puts each figure: (label, key), or (heading, None).
_STATUS_LAYOUT: tuple[tuple[str, str | None], ...] = (
    ("Stream", None),
    ("  backlog", "stream_backlog"),
    ("  unacked", "stream_unacked"),
    ("  oldest event age", "oldest_event_age_s"),
    ("Schedule", None),
    ("  pending contacts", "pending_contacts"),
    ("  due now", "due_now"),
    ("  most overdue", "most_overdue_s"),
    ("  in flight", "in_flight"),
    ("Dead letters", "dead_letters"),
    ("Limiter", None),
    ("  sent in last second", "limiter_sent_in_window"),
    ("  paused for", "limiter_paused_for_s"),
    ("Pump running", "pump_running"),
    ("  on worker", "pump_holder"),
    ("Bulk import", None),
    ("  backlog mode", "bulk_mode"),
    ("  batches in flight", "bulk_batches"),
    ("  of which submitted", "bulk_batches_submitted"),
    ("  emails in batches", "bulk_in_flight"),
    ("  oldest batch age", "bulk_oldest_batch_age_s"),
    ("  paused for", "bulk_paused_for_s"),
)


#: One line of ``status_text``: a label and its value in each column, or a heading (None).
_Row = tuple[str, list[str] | None]


def status_text(figures: Mapping[str, Any]) -> str:
    """``Overview.as_dict()`` as labelled sections with the values in one column.

    With several destinations (a ``destinations`` mapping), the shared figures (stream and
    pump) come first, then a table with one column per destination. Figures that
    ``_STATUS_LAYOUT`` does not place are listed after it, so a new figure shows up before
    anyone decides where it belongs.
    """
    destinations = figures.get("destinations")
    if not isinstance(destinations, Mapping):
        return _aligned([_figure_rows([figures])])
    shared = {key: value for key, value in figures.items() if key != "destinations"}
    header: _Row = ("Destination", [printable(str(name)) for name in destinations])
    return _aligned([_figure_rows([shared]), [header, *_figure_rows(list(destinations.values()))]])


def _figure_rows(columns: Sequence[Mapping[str, Any]]) -> list[_Row]:
    """The rows for these columns of figures: the layout's, then unplaced ones, then counters;
    a figure no column has is left out, and so is a heading left with nothing under it."""
    present = {key: None for column in columns for key in column}  # ordered, no repeats
    rows: list[_Row] = []
    for label, key in _STATUS_LAYOUT:
        if key is None:
            rows.append((label, None))
        elif key in present:
            rows.append((label, [_figure(key, column.get(key)) for column in columns]))
    placed = {key for _, key in _STATUS_LAYOUT} | {"counters"}
    rows += [
        (key.replace("_", " ").capitalize(), [_figure(key, column.get(key)) for column in columns])
        for key in present
        if key not in placed
    ]
    if "counters" in present:
        rows += _counter_rows([column.get("counters") or {} for column in columns])
    return _without_empty_headings(rows)


def _counter_rows(counters: Sequence[Mapping[str, int]]) -> list[_Row]:
    names = sorted({name for column in counters for name in column})
    if not names:
        return [("Counters", [NONE] * len(counters))]
    rows: list[_Row] = [("Counters", None)]
    rows += [(f"  {name}", [str(column.get(name, 0)) for column in counters]) for name in names]
    return rows


def _without_empty_headings(rows: list[_Row]) -> list[_Row]:
    """Drop each heading not followed by an indented figure of its own."""
    kept = []
    for index, (label, values) in enumerate(rows):
        following = rows[index + 1][0] if index + 1 < len(rows) else ""
        if values is not None or following.startswith("  "):
            kept.append((label, values))
    return kept


def _aligned(blocks: Sequence[Sequence[_Row]]) -> str:
    """Blocks of rows, a blank line between them: labels padded to one width in all of
    them, values in columns two spaces apart (the last one unpadded)."""
    width = max(len(label) for block in blocks for label, _ in block)
    texts = []
    for block in blocks:
        count = max((len(values) for _, values in block if values is not None), default=0)
        widths = [
            max(len(values[n]) for _, values in block if values is not None and len(values) > n)
            for n in range(count)
        ]
        lines = []
        for label, values in block:
            if values is None:
                lines.append(label)
                continue
            cells = [value.ljust(size) for value, size in zip(values[:-1], widths, strict=False)]
            lines.append(f"{label.ljust(width)}  " + "  ".join([*cells, values[-1]]))
        texts.append("\n".join(lines))
    return "\n\n".join(texts)


def _figure(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("limiter_paused_for_s", "bulk_paused_for_s"):
        return age(value or None)  # 0: not paused
    if key.endswith("_s") and isinstance(value, int | float):
        return age(value)
    return NONE if value is None else printable(str(value))


def message_lines(messages: Any, path: str = "") -> list[str]:
    """Flatten marshmallow-style messages (nested dicts of lists) to ``a.b: message`` lines."""
    if isinstance(messages, Mapping):
        lines = []
        for key, value in messages.items():
            lines += message_lines(value, f"{path}.{key}" if path else str(key))
        return lines
    if isinstance(messages, list | tuple):
        return [line for item in messages for line in message_lines(item, path)]
    text = str(messages)
    return [f"{path}: {text}" if path else text]


def compact_errors(errors: Any, *, width: int | None = None) -> str:
    """A dead letter's errors (messages dict, list of API titles or text) on one line."""
    if errors is None or errors == [] or errors == {}:
        return NONE
    text = "; ".join(message_lines(errors))
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def letters_table(letters: Sequence[DeadLetter]) -> str:
    """One line per dead letter, oldest first."""
    rows = [
        (
            letter.id,
            letter.reason,
            letter.email or NONE,
            str(letter.status) if letter.status is not None else NONE,
            compact_errors(letter.errors, width=_ERRORS_WIDTH),
            _when(letter.dead_at),
        )
        for letter in letters
    ]
    return table(("ID", "REASON", "EMAIL", "STATUS", "ERRORS", "DEAD AT"), rows)


def letter_text(letter: DeadLetter) -> str:
    """Everything a dead letter holds, with its attributes and raw event spelled out."""
    details = [
        ("id", letter.id),
        ("reason", letter.reason),
        ("email", letter.email or NONE),
        ("status", str(letter.status) if letter.status is not None else NONE),
        ("attempts", str(letter.attempts) if letter.attempts is not None else NONE),
        ("first attempt", _when(letter.first_attempt_at)),
        ("dead at", _when(letter.dead_at)),
        ("event id", letter.event_id or NONE),
        ("stream entry", letter.entry or NONE),
    ]
    width = max(len(label) for label, _ in details)
    lines = [f"{label.ljust(width)}  {printable(value)}" for label, value in details]
    lines += ["", "errors:"]
    lines += [f"  {printable(line)}" for line in message_lines(letter.errors)] or [f"  {NONE}"]
    if letter.attributes:
        occurred = letter.attribute_occurred_at()
        rows = [
            # JSON-quoted, so that "" (a real value) and trailing spaces stay visible.
            (name, json.dumps(value, ensure_ascii=False), occurred[name].isoformat())
            for name, (value, _) in sorted(letter.attributes.items())
        ]
        lines += ["", "attributes:", _indent(table(("NAME", "VALUE", "OCCURRED AT"), rows))]
    if letter.raw is not None:
        lines += ["", "raw:", _indent(printable(_pretty(letter.raw), multiline=True))]
    return "\n".join(lines)


def _pretty(raw: str) -> str:
    try:
        return to_json(json.loads(raw))
    except (ValueError, RecursionError):
        return raw  # truncated or not JSON at all: show it as it was received


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.split("\n"))


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else NONE
