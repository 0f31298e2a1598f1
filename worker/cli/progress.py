"""What ``contact-sync import`` shows while it runs: progress, bad rows, and the summary.

On a terminal the progress is one bar redrawn in place (count, rate, ETA). Anywhere else
(a log file, CI) it is a plain line every ``interval_s``: carriage returns make logs
unreadable. Everything here writes to stderr except ``summary_text``, the command's result.

Not ``click.progressbar``: it shows no rate, prints only its label when stderr is not a
terminal, and cannot step aside for the messages about invalid rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TextIO

from worker.cli import render
from worker.cli.import_source import RowError
from worker.cli.importer import ImportSummary

__all__ = ["ImportConsole", "Progress", "progress_text", "summary_text"]

BAR_WIDTH = 24
#: Invalid rows printed on stderr; the errors file, when asked for, gets all of them.
MAX_PRINTED_ERRORS = 100


def progress_text(done: int, total: int | None, elapsed_s: float) -> str:
    """``12,000/50,000 rows (24%), 8,123 rows/s, ETA 4.8s``; parts that cannot be known yet
    are left out. ``done`` counts this run's rows, ``total`` those it expects to read."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if total:
        text = f"{done:,}/{total:,} rows ({min(done / total, 1.0):.0%}), {rate:,.0f} rows/s"
        if rate > 0 and done < total:
            text += f", ETA {render.age((total - done) / rate)}"
        return text
    return f"{done:,} rows, {rate:,.0f} rows/s"


class Progress:
    """Throttled progress on ``stream``: a bar when ``tty``, else a plain line now and then."""

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int | None,
        tty: bool,
        redraw_s: float = 0.1,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.total, self.tty, self.clock = stream, total, tty, clock
        self.every_s = redraw_s if tty else interval_s
        self.started = self.last = clock()
        self.drawn = False

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        text = progress_text(done, self.total, now - self.started)
        if self.tty:
            self.stream.write(f"\r{self._bar(done)} {text}\x1b[K")
            self.drawn = True
        else:
            self.stream.write(f"import: {text}\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar, so that other output starts at the beginning of a clean line."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.drawn = False

    def _bar(self, done: int) -> str:
        filled = round(BAR_WIDTH * min(done / self.total, 1.0)) if self.total else 0
        return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


class ImportConsole:
    """Receives ``run_import``'s callbacks: shows progress and reports invalid rows."""

    def __init__(self, progress: Progress, errors_file: TextIO | None = None) -> None:
        self.progress = progress
        self.errors_file = errors_file
        self.printed = 0

    def invalid(self, error: RowError) -> None:
        if self.errors_file is not None:
            # json's default ensure_ascii escapes undecodable bytes (lone surrogates).
            record = {"line": error.line, "errors": error.messages, "row": error.values}
            self.errors_file.write(json.dumps(record, default=str) + "\n")
        self.printed += 1
        if self.printed > MAX_PRINTED_ERRORS:
            return
        self.progress.clear()
        stream = self.progress.stream
        for message in render.message_lines(error.messages):
            stream.write(f"line {error.line}: {_safe(message)}\n")
        if self.printed == MAX_PRINTED_ERRORS:
            where = "the errors file" if self.errors_file else "--errors-file"
            stream.write(f"(no more invalid rows are printed; see {where})\n")

    def update(self, summary: ImportSummary) -> None:
        self.progress.update(summary.rows - summary.skipped)

    def close(self) -> None:
        self.progress.clear()
        if self.errors_file is not None:
            self.errors_file.close()


def summary_text(summary: ImportSummary, *, dry_run: bool) -> str:
    """The human summary: what was read, enqueued (or would be), refused and skipped."""
    done = "would enqueue" if dry_run else "enqueued"
    count = summary.valid if dry_run else summary.enqueued
    text = (
        f"{summary.outcome}: {summary.rows:,} rows read, {count:,} {done}, "
        f"{summary.invalid:,} invalid, {summary.skipped:,} skipped "
        f"in {summary.elapsed_s:.1f}s ({summary.rows_per_s:,.0f} rows/s)"
    )
    if dry_run:
        text += "\ndry run: nothing was written"
        if summary.first_contact is not None:
            text += f"\nfirst contact: {_safe(json.dumps(summary.first_contact))}"
    if summary.invalid:
        verb = "would not be" if dry_run else "were not"
        text += f"\n{summary.invalid:,} invalid row(s) {verb} enqueued; see the messages above"
    return text


def _safe(text: str) -> str:
    """Printable and encodable: rows may carry control characters or undecodable bytes."""
    return render.printable(text.encode("utf-8", "backslashreplace").decode("utf-8"))
