"""Backfill: validate every record of an import file and enqueue the valid ones in batches.

The ``contact-sync import`` command drives these pieces, each usable on its own::

    plan_import(path, ...)        → ImportPlan       import_source: the file, the column flags
    ImportPlan.records()          → Record           import_source: one per data line
    encode_record(record, ...)    → wire event       the shared schema (encode_event)
    write(texts)                  → XADDs            ContactSyncProducer.write_encoded
    run_import(records, ...)      → ImportSummary    counts and the line to resume from

Line numbers: JSONL line N is line N of the file. CSV line N is the N-th record after the
header, so line 1 is the first data row (line 2 of the file when no cell holds a line
break). ``start_line`` and ``ImportSummary.resume_line`` count the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from worker.cli.import_mapping import RowMapping
from worker.cli.import_source import Record, RowError, UnreadableFile
from worker.errors import EnqueueError, InvalidContactEvent
from worker.keys import DEFAULT_DESTINATION
from worker.schema import encode_event

__all__ = ["BatchWrite", "ImportSummary", "encode_record", "run_import"]

#: Writes encoded events in order. On failure it raises EnqueueError whose ``written``
#: says how many of them, from the first, are enqueued (ContactSyncProducer.write_encoded).
BatchWrite = Callable[[Sequence[str]], None]


def encode_record(
    record: Record,
    mapping: RowMapping,
    *,
    occurred_at: dt.datetime,
    source: str | None,
    destination: str = DEFAULT_DESTINATION,
) -> str:
    """The wire event for one record. Raises InvalidContactEvent with per-field messages.

    ``occurred_at`` applies unless the mapping's occurred-at column has a value.
    """
    if record.problem is not None:
        raise InvalidContactEvent({"_row": [record.problem]})
    contact = mapping.contact(record.values)
    try:
        moment = mapping.occurred_at(record.values, occurred_at)
        _, text = encode_event(contact, occurred_at=moment, source=source, destination=destination)
    except InvalidContactEvent as exc:
        raise InvalidContactEvent(_name_references(exc.messages, contact)) from None
    return text


def _name_references(messages: Any, contact: Mapping[str, Any]) -> Any:
    """Messages keyed ``field <ref>``, ``tag <name>`` and ``list <ref>`` instead of
    ``fieldValues.<index>``, ``tags.<name>`` and ``lists.<ref>``: a row has no index, and
    one short key per reference reads best on a line of its own."""
    if not isinstance(messages, dict):
        return messages
    renamed = dict(messages)
    items = contact.get("fieldValues")
    if isinstance(messages.get("fieldValues"), dict):
        del renamed["fieldValues"]
        for index, detail in messages["fieldValues"].items():
            item = items[index] if isinstance(items, list) and isinstance(index, int) else None
            if isinstance(item, Mapping) and isinstance(item.get("field"), str | int):
                renamed[f"field {item['field']}"] = detail
            else:
                renamed.setdefault("fieldValues", {})[index] = detail
    for key, noun in (("tags", "tag"), ("lists", "list")):
        if isinstance(messages.get(key), dict):
            del renamed[key]
            renamed |= {f"{noun} {ref}": detail for ref, detail in messages[key].items()}
    return renamed


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


def _ignore(_: Any) -> None:
    return None


def run_import(
    records: Iterable[Record],
    mapping: RowMapping,
    *,
    write: BatchWrite | None,
    occurred_at: dt.datetime,
    source: str | None,
    destination: str = DEFAULT_DESTINATION,
    batch_size: int = 1000,
    start_line: int = 1,
    on_invalid: Callable[[RowError], None] = _ignore,
    on_progress: Callable[[ImportSummary], None] = _ignore,
    clock: Callable[[], float] = time.monotonic,
) -> ImportSummary:
    """Validate every record from ``start_line`` on and write valid ones in batches.

    ``write=None`` is a dry run. Invalid rows go to ``on_invalid`` and never stop the run.
    EnqueueError, an unreadable file and Ctrl+C end it early, with ``resume_line`` set to
    the first row not enqueued (from EnqueueError's ``written`` when a batch half failed).
    """
    summary = ImportSummary()
    started = clock()
    last_done = start_line - 1  # the last line validated (and, if valid, put in a batch)
    batch: list[tuple[int, str]] = []  # (line, event) of the valid rows not yet written
    try:
        for record in records:
            summary.rows += 1
            if record.line < start_line:
                summary.skipped += 1
                continue
            try:
                text = encode_record(
                    record,
                    mapping,
                    occurred_at=occurred_at,
                    source=source,
                    destination=destination,
                )
            except InvalidContactEvent as exc:
                summary.invalid += 1
                on_invalid(RowError(record.line, exc.messages, record.values))
            else:
                summary.valid += 1
                if summary.first_contact is None:
                    summary.first_contact = json.loads(text)["contact"]
                batch.append((record.line, text))
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
        # _flush drops events from the batch only once Redis has them, so the first row
        # still held is the first not written; everything before it is done.
        summary.resume_line = batch[0][0] if batch else last_done + 1
    summary.elapsed_s = clock() - started
    return summary


def _flush(batch: list[tuple[int, str]], write: BatchWrite | None, summary: ImportSummary) -> None:
    """Write the batch and empty it. On EnqueueError, only the events written leave it."""
    if not batch:
        return
    with _interrupts_deferred():
        if write is not None:
            try:
                write([text for _, text in batch])
            except EnqueueError as exc:
                summary.enqueued += exc.written
                del batch[: exc.written]
                raise
            summary.enqueued += len(batch)
        batch.clear()


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl+C until the block ends, then raise it.

    An interrupt between a write and its reply would leave it unknown whether the events
    were written, and the resume line could repeat them. Only in the main thread, and only when
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
