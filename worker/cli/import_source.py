"""Reading an import file: the plan that checks file and flags first, the CSV/JSONL readers.

Line numbers: JSONL line N is line N of the file. CSV line N is the N-th record after the
header, so line 1 is the first data row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from worker.cli.import_flags import ColumnFlags, ImportUsageError
from worker.cli.import_mapping import RowMapping
from worker.references import MAX_TEXT

__all__ = [
    "FORMATS",
    "ImportPlan",
    "ImportUsageError",
    "Record",
    "RowError",
    "UnreadableFile",
    "plan_import",
]

Format = Literal["csv", "jsonl"]
FORMATS = ("csv", "jsonl")
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Spreadsheet exports often start with a byte-order mark. Undecodable bytes become lone
# surrogates, which the schema rejects with a message for that row alone, instead of one
# bad byte aborting the import.
_ENCODING, _DECODE_ERRORS = "utf-8-sig", "surrogateescape"


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


def plan_import(
    path: Path,
    *,
    fmt: str | None = None,
    columns: ColumnFlags | None = None,
    source: str | None = None,
) -> ImportPlan:
    """Check the file and the column flags before anything is read or written.

    ``columns`` says which column holds what (ColumnFlags; default: the columns named
    like API attributes). For CSV, every column named by a flag must be in the header.
    ``source`` defaults to ``import:<file name>``. Raises ImportUsageError.
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
    mapping = (columns or ColumnFlags()).mapping(fmt)
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
        used = {*self.mapping.attribute_columns.values(), *self.mapping.required_columns}
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
