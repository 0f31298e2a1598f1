"""Backfill: read contacts from a CSV or JSONL file, validate every row, enqueue in batches.

The ``contact-sync import`` command drives these pieces, each usable on its own::

    plan_import(path, ...)        → ImportPlan       checks the file and the column flags
    ImportPlan.records()          → Record           one per data line
    RowMapping.contact(values)    → contact dict     columns → API attributes
    encode_record(record, ...)    → wire event       the shared schema (encode_event)
    StreamBatchWriter.write(...)  → MULTI/EXEC       a batch of XADDs, all or nothing
    run_import(records, ...)      → ImportSummary    counts and the line to resume from

Line numbers: JSONL line N is line N of the file. CSV line N is the N-th record after the
header, so line 1 is the first data row (line 2 of the file when no cell holds a line
break). ``start_line`` and ``ImportSummary.resume_line`` count the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import redis

from worker.errors import EnqueueError, InvalidContactEvent
from worker.keys import Keys
from worker.schema import MAX_TEXT, encode_event

__all__ = [
    "API_ATTRIBUTES",
    "FORMATS",
    "ImportPlan",
    "ImportSummary",
    "ImportUsageError",
    "Record",
    "RowError",
    "RowMapping",
    "StreamBatchWriter",
    "encode_record",
    "plan_import",
    "run_import",
]

Format = Literal["csv", "jsonl"]
FORMATS = ("csv", "jsonl")
API_ATTRIBUTES = ("firstName", "lastName", "phone")
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Spreadsheet exports often start with a byte-order mark. Undecodable bytes become lone
# surrogates, which the schema rejects with a message for that row alone, instead of one
# bad byte aborting the import.
_ENCODING, _DECODE_ERRORS = "utf-8-sig", "surrogateescape"


class ImportUsageError(ValueError):
    """The file or the flags cannot work: nothing was imported. The message says why."""


class UnreadableFile(ImportUsageError):
    """The file broke off in the middle (e.g. a CSV cell over the size limit)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One data line. ``values`` maps columns to cells; when ``problem`` is set it holds
    whatever the line had instead (the text of bad JSON, a list of CSV cells)."""

    line: int
    values: Any
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """An invalid row: its line, the per-field messages, and the values it held."""

    line: int
    messages: Any
    values: Any


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


def plan_import(
    path: Path,
    *,
    fmt: str | None = None,
    email_column: str | None = None,
    maps: Sequence[str] = (),
    fields: Sequence[str] = (),
    occurred_at_column: str | None = None,
    source: str | None = None,
) -> ImportPlan:
    """Check the file and the column flags before anything is read or written.

    ``maps`` holds ``attribute=column`` and ``fields`` holds ``id=column`` strings. For CSV,
    columns named like API attributes (firstName, lastName, phone) map themselves, and
    every column named by a flag must be in the header. A JSONL file without mapping
    flags is read as API-shaped contacts. ``source`` defaults to ``import:<file name>``.
    Raises ImportUsageError.
    """
    if not path.is_file():
        raise ImportUsageError(f"{path}: no such file")
    if fmt is None:
        fmt = _EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise ImportUsageError(
                f"{path.name}: cannot tell the format from the extension; "
                "use --format csv or --format jsonl"
            )
    if fmt not in FORMATS:
        raise ImportUsageError(f"unknown format {fmt!r}; use csv or jsonl")
    attributes = _assignments(maps, "--map", "ATTRIBUTE=COLUMN")
    unknown = sorted(set(attributes) - set(API_ATTRIBUTES))
    if unknown:
        raise ImportUsageError(
            f"--map: unknown attribute {', '.join(unknown)}; use {', '.join(API_ATTRIBUTES)} "
            "(the email column is set with --email-column)"
        )
    field_columns = {
        _field_id(field_id): column
        for field_id, column in _assignments(fields, "--field", "ID=COLUMN").items()
    }
    if len(field_columns) < len(fields):
        raise ImportUsageError("--field: each custom field id may be mapped only once")
    required = (email_column or "email", *attributes.values(), *field_columns.values())
    mapping = RowMapping(
        email_column=email_column or "email",
        attribute_columns={name: name for name in API_ATTRIBUTES} | attributes,
        field_columns=field_columns,
        occurred_at_column=occurred_at_column,
        passthrough=fmt == "jsonl" and email_column is None and not maps and not fields,
        required_columns=required + ((occurred_at_column,) if occurred_at_column else ()),
    )
    source = f"import:{path.name}"[:MAX_TEXT] if source is None else source
    if len(source) > MAX_TEXT:  # else every row would fail with the same message
        raise ImportUsageError(f"--source: longer than {MAX_TEXT} characters")
    plan = ImportPlan(path, cast(Format, fmt), mapping, source)
    plan.check_header()
    return plan


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """A checked file and mapping, ready to read."""

    path: Path
    fmt: Format
    mapping: RowMapping
    source: str

    def header(self) -> list[str]:
        """The CSV header (empty for JSONL and for an empty file)."""
        if self.fmt != "csv":
            return []
        with self.path.open(newline="", encoding=_ENCODING, errors=_DECODE_ERRORS) as handle:
            return next(csv.reader(handle), [])

    def check_header(self) -> None:
        header = self.header()
        if self.fmt != "csv" or not header:
            return
        missing = [name for name in self.mapping.required_columns if name not in header]
        if missing:
            raise ImportUsageError(
                f"{self.path.name}: no column {', '.join(map(repr, missing))}; "
                f"the header has {', '.join(map(repr, header))}"
            )
        twice = sorted({name for name in self.mapping.required_columns if header.count(name) > 1})
        if twice:
            raise ImportUsageError(f"{self.path.name}: column {', '.join(twice)} appears twice")

    def unused_columns(self) -> list[str]:
        """CSV columns that no flag maps: listed once, so that a typo does not go unseen."""
        mapping = self.mapping
        used = {mapping.email_column, mapping.occurred_at_column}
        used |= {*mapping.attribute_columns.values(), *mapping.field_columns.values()}
        return [name for name in self.header() if name not in used]

    def records(self) -> Iterator[Record]:
        """Every data line, in order, numbered as the module docstring says."""
        return _read_csv(self.path) if self.fmt == "csv" else _read_jsonl(self.path)

    def count_rows(self) -> int:
        """About how many data lines there are, for the progress bar's ETA.

        One pass counting newlines (milliseconds for 100k lines); blank lines and line
        breaks inside quoted CSV cells make it an estimate.
        """
        lines, last = 0, b"\n"
        with self.path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                lines, last = lines + chunk.count(b"\n"), chunk[-1:]
        lines += last != b"\n"
        return max(lines - 1, 0) if self.fmt == "csv" else lines


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


def _field_id(text: str) -> str:
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise ImportUsageError(f"--field: custom field id must be a positive integer, got {text!r}")
    return str(int(text))


def _read_csv(path: Path) -> Iterator[Record]:
    with path.open(newline="", encoding=_ENCODING, errors=_DECODE_ERRORS) as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        line = 0
        try:
            for line, cells in enumerate(rows, start=1):
                if not cells:  # a blank line: numbered, but not a row
                    continue
                if len(cells) != len(header or ()):
                    problem = f"Has {len(cells)} cells; the header has {len(header or ())}."
                    yield Record(line, cells, problem)
                else:
                    yield Record(line, dict(zip(header or (), cells, strict=True)))
        except csv.Error as exc:
            raise UnreadableFile(f"{path.name}: cannot read line {line + 1}: {exc}") from None


def _read_jsonl(path: Path) -> Iterator[Record]:
    # Binary lines split on "\n" only, so line numbers match what an editor shows.
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            text = raw.decode(_ENCODING if line == 1 else "utf-8", _DECODE_ERRORS)
            if not text.strip():
                continue
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Record(line, text.rstrip("\r\n"), f"Not valid JSON: {exc.msg}.")
            except RecursionError:
                yield Record(line, text.rstrip("\r\n"), "Not valid JSON: too deeply nested.")
            else:
                if isinstance(values, dict):
                    yield Record(line, values)
                else:
                    yield Record(line, values, "A line must hold one JSON object.")


def encode_record(
    record: Record, mapping: RowMapping, *, occurred_at: dt.datetime, source: str | None
) -> str:
    """The v1 wire event for one record. Raises InvalidContactEvent with per-field messages.

    ``occurred_at`` applies unless the mapping's occurred-at column has a value.
    """
    if record.problem is not None:
        raise InvalidContactEvent({"_row": [record.problem]})
    contact = mapping.contact(record.values)
    try:
        moment = mapping.occurred_at(record.values, occurred_at)
        _, text = encode_event(contact, occurred_at=moment, source=source)
    except InvalidContactEvent as exc:
        raise InvalidContactEvent(_name_field_errors(exc.messages, contact)) from None
    return text


def _name_field_errors(messages: Any, contact: Mapping[str, Any]) -> Any:
    """Messages with ``fieldValues.<index>`` renamed ``field <id>``: a row has no index."""
    items = contact.get("fieldValues")
    if not isinstance(messages, dict) or not isinstance(messages.get("fieldValues"), dict):
        return messages
    renamed = {key: value for key, value in messages.items() if key != "fieldValues"}
    for index, detail in messages["fieldValues"].items():
        item = items[index] if isinstance(items, list) and isinstance(index, int) else None
        if isinstance(item, Mapping) and isinstance(item.get("field"), str | int):
            renamed[f"field {item['field']}"] = detail
        else:
            renamed.setdefault("fieldValues", {})[index] = detail
    return renamed


class StreamBatchWriter:
    """Appends batches of encoded events to ``{prefix}:events``."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def write(self, texts: Sequence[str]) -> None:
        """XADD every text in one MULTI/EXEC. Raises EnqueueError."""
        # A transaction, not a plain pipeline: if the connection drops mid-batch, Redis
        # discards the queued XADDs, so a batch is written entirely or not at all and the
        # resume line is exact.
        pipe = self.client.pipeline(transaction=True)
        for text in texts:
            pipe.xadd(self.keys.events, {"event": text})
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise EnqueueError(
                f"could not enqueue a batch of {len(texts)} events: {type(exc).__name__}: {exc}"
            ) from exc


@dataclass(slots=True)
class ImportSummary:
    """Counts of one run. ``resume_line`` is set when the run stopped early: every row
    before it was enqueued, invalid or skipped; none from it on was enqueued."""

    rows: int = 0  # records read, skipped ones included
    skipped: int = 0  # records before start_line
    valid: int = 0
    enqueued: int = 0  # stays 0 in a dry run
    invalid: int = 0
    elapsed_s: float = 0.0
    outcome: str = "running"  # then "complete", "interrupted" (Ctrl+C) or "failed"
    resume_line: int | None = None
    error: str | None = None
    first_contact: dict[str, Any] | None = None

    @property
    def rows_per_s(self) -> float:
        """Rows validated per second, skipped rows excluded."""
        processed = self.rows - self.skipped
        return processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(self.rows_per_s, 1),
        }


BatchWrite = Callable[[Sequence[str]], None]


def _ignore(_: Any) -> None:
    return None


def run_import(
    records: Iterable[Record],
    mapping: RowMapping,
    *,
    write: BatchWrite | None,
    occurred_at: dt.datetime,
    source: str | None,
    batch_size: int = 1000,
    start_line: int = 1,
    on_invalid: Callable[[RowError], None] = _ignore,
    on_progress: Callable[[ImportSummary], None] = _ignore,
    clock: Callable[[], float] = time.monotonic,
) -> ImportSummary:
    """Validate every record from ``start_line`` on and write valid ones in batches.

    ``write=None`` is a dry run. Invalid rows go to ``on_invalid`` and never stop the run.
    EnqueueError, an unreadable file and Ctrl+C end it early, with ``resume_line`` set.
    """
    summary = ImportSummary()
    started = clock()
    last_done = start_line - 1  # the last line validated (and, if valid, put in a batch)
    batch: list[str] = []
    batch_start = start_line  # the line of the first row in ``batch``
    try:
        for record in records:
            summary.rows += 1
            if record.line < start_line:
                summary.skipped += 1
                continue
            try:
                text = encode_record(record, mapping, occurred_at=occurred_at, source=source)
            except InvalidContactEvent as exc:
                summary.invalid += 1
                on_invalid(RowError(record.line, exc.messages, record.values))
            else:
                summary.valid += 1
                if summary.first_contact is None:
                    summary.first_contact = json.loads(text)["contact"]
                if not batch:
                    batch_start = record.line
                batch.append(text)
            last_done = record.line
            if len(batch) >= batch_size:
                _flush(batch, write, summary)
            summary.elapsed_s = clock() - started
            on_progress(summary)
        _flush(batch, write, summary)
        summary.outcome = "complete"
    except (EnqueueError, UnreadableFile) as exc:
        summary.outcome, summary.error = "failed", str(exc)
    except KeyboardInterrupt:
        summary.outcome = "interrupted"
    if summary.outcome != "complete":
        # _flush empties the batch only once Redis has it, so rows in a batch still held
        # here were not written; everything before them was.
        summary.resume_line = batch_start if batch else last_done + 1
    summary.elapsed_s = clock() - started
    return summary


def _flush(batch: list[str], write: BatchWrite | None, summary: ImportSummary) -> None:
    if not batch:
        return
    with _interrupts_deferred():
        if write is not None:
            write(batch)
            summary.enqueued += len(batch)
        batch.clear()


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl+C until the block ends, then raise it.

    An interrupt between EXEC and its reply would leave it unknown whether the batch was
    written, and the resume line could repeat it. Only in the main thread, and only when
    Ctrl+C has its default meaning.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
