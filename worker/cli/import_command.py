"""``contact-sync import``: backfill contacts from a CSV or JSONL file (docs/import.md)."""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import ExitStack, closing
from pathlib import Path

import click

from worker.cli import render
from worker.cli.context import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliState,
    aware_datetime,
    error,
    json_option,
    pass_state,
)
from worker.cli.import_flags import ColumnFlags, ImportUsageError
from worker.cli.import_source import FORMATS, plan_import
from worker.cli.importer import BatchWrite, run_import
from worker.cli.progress import ImportConsole, Progress, summary_text
from worker.destinations import DESTINATION_ERROR, DESTINATION_NAME
from worker.keys import DEFAULT_DESTINATION

__all__ = ["import_file"]

# Invalid rows alone do not fail an import (docs/import.md, "Exit status").
_EXIT_BY_OUTCOME = {"complete": EXIT_OK, "interrupted": EXIT_INTERRUPTED}


def _destination_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Checked before any row is read: a malformed name would make every row invalid."""
    if not DESTINATION_NAME.fullmatch(value):
        raise click.BadParameter(DESTINATION_ERROR)
    return value


@click.command("import", short_help="Backfill contacts from a CSV or JSONL file.")
@click.argument("path", type=click.Path(path_type=Path), metavar="FILE")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="[default: from the extension]")
@click.option("--email-column", metavar="COLUMN", help="[default: email]")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="ATTRIBUTE=COLUMN",
    help="firstName, lastName or phone from COLUMN (columns so named map themselves).",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="REF=COLUMN",
    help="Custom field by id, %PERSTAG% or title.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="NAME=COLUMN",
    help="Tag NAME: true adds it, false removes it.",
)
@click.option("--tags-column", metavar="COLUMN", help="Tag names to add, separated by commas.")
@click.option(
    "--tags-separator", metavar="TEXT", help="Between names in --tags-column.  [default: ,]"
)
@click.option(
    "--list",
    "lists",
    multiple=True,
    metavar="REF=COLUMN",
    help="List by id or name: subscribed or unsubscribed.",
)
@click.option("--account-column", metavar="COLUMN", help="The contact's company (account) name.")
@click.option(
    "--occurred-at",
    type=aware_datetime,
    metavar="ISO8601",
    help="When the file's values were current, e.g. the export time.  [default: now]",
)
@click.option("--occurred-at-column", metavar="COLUMN", help="Per-row time; empty: --occurred-at.")
@click.option("--source", help="[default: import:FILE]")
@click.option(
    "--destination",
    default=DEFAULT_DESTINATION,
    callback=_destination_name,
    metavar="NAME",
    help="The ActiveCampaign account every row is for (a name in the workers' "
    "CONTACT_SYNC_DESTINATIONS_FILE).  [default: default]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    metavar="N",
    help="Events per batch.",
)
@click.option(
    "--start-line",
    type=click.IntRange(min=1),
    default=1,
    metavar="N",
    help="Skip the rows before line N, to resume.",
)
@click.option("--errors-file", type=click.Path(path_type=Path), help="Invalid rows, as JSONL.")
@click.option("--dry-run", is_flag=True, help="Validate only; write nothing.")
@json_option
@pass_state
def import_file(
    state: CliState,
    path: Path,
    fmt: str | None,
    email_column: str | None,
    maps: tuple[str, ...],
    fields: tuple[str, ...],
    tags: tuple[str, ...],
    tags_column: str | None,
    tags_separator: str | None,
    lists: tuple[str, ...],
    account_column: str | None,
    occurred_at: dt.datetime | None,
    occurred_at_column: str | None,
    source: str | None,
    destination: str,
    batch_size: int,
    start_line: int,
    errors_file: Path | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Validate every row of FILE and enqueue the valid ones in batches.

    Line N: line N of a JSONL file, the N-th data row of a CSV file. An empty cell
    leaves its attribute unchanged. --map, --field, --tag and --list repeat.
    """
    try:
        columns = ColumnFlags(
            email_column=email_column,
            maps=maps,
            fields=fields,
            tags=tags,
            tags_column=tags_column,
            tags_separator=tags_separator,
            lists=lists,
            account_column=account_column,
            occurred_at_column=occurred_at_column,
        )
        plan = plan_import(path, fmt=fmt, columns=columns, source=source)
        errors = errors_file.open("w", encoding="utf-8") if errors_file else None
    except (ImportUsageError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    if unused := plan.unused_columns():
        error(f"import: ignoring columns {', '.join(unused)}")
    progress = Progress(sys.stderr, total=plan.count_rows(), tty=sys.stderr.isatty())
    console = ImportConsole(progress, errors)
    with ExitStack() as stack:
        stack.callback(console.close)
        write: BatchWrite | None = None
        if not dry_run:
            producer = stack.enter_context(closing(state.producer()))
            producer.redis.ping()  # an unreachable Redis fails here, before a row is read
            write = producer.write_encoded
        summary = run_import(
            plan.records(),
            plan.mapping,
            write=write,
            occurred_at=occurred_at or dt.datetime.now(dt.UTC),
            source=plan.source,
            destination=destination,
            batch_size=batch_size,
            start_line=start_line,
            on_invalid=console.invalid,
            on_progress=console.update,
        )
    report = {"file": str(path), "format": plan.fmt, "dry_run": dry_run}
    click.echo(
        render.to_json(report | summary.as_dict())
        if as_json
        else summary_text(summary, dry_run=dry_run)
    )
    if summary.resume_line is not None and not dry_run:
        line = summary.resume_line
        error(
            f"import {summary.outcome}"
            + (f": {summary.error}" if summary.error else "")
            + f"; rows before line {line} are done: resume with --start-line {line}"
        )
    return _EXIT_BY_OUTCOME.get(summary.outcome, EXIT_FAILURE)
