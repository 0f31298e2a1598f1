"""``contact-sync enqueue``: one contact change by hand, through the producer."""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import click

from worker.cli import render
from worker.cli.context import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliState,
    aware_datetime,
    error,
    field_assignment,
    json_option,
    one_line,
    pass_state,
)
from worker.errors import EnqueueError, InvalidContactEvent

__all__ = ["enqueue"]


@click.command()
@click.option("--email", required=True)
@click.option("--first-name")
@click.option("--last-name")
@click.option("--phone")
@click.option(
    "--field",
    "fields",
    multiple=True,
    type=field_assignment,
    metavar="ID=VALUE",
    help="Custom field value; repeat for more fields.",
)
@click.option(
    "--occurred-at",
    type=aware_datetime,
    metavar="ISO8601",
    help="When the change happened, with a UTC offset.  [default: now]",
)
@click.option("--source", default="cli", show_default=True, help="Where the change came from.")
@json_option
@pass_state
def enqueue(
    state: CliState,
    email: str,
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    fields: tuple[tuple[str, str], ...],
    occurred_at: dt.datetime | None,
    source: str,
    as_json: bool,
) -> int:
    """Enqueue one contact change by hand."""
    values: dict[int | str, str] = dict(fields)
    if len(values) < len(fields):
        raise click.BadParameter("each custom field may be given only once", param_hint="'--field'")
    with closing(state.producer()) as producer:
        try:
            event_id = producer.contact_changed(
                email,
                first_name=first_name,
                last_name=last_name,
                phone=phone,
                fields=values or None,
                occurred_at=occurred_at,
                source=source,
            )
        except InvalidContactEvent as exc:
            error("invalid contact event, nothing was enqueued:")
            for line in render.message_lines(exc.messages):
                click.echo(f"  {render.printable(line)}", err=True)
            return EXIT_USAGE
        except EnqueueError as exc:
            error(one_line(exc))
            return EXIT_FAILURE
    click.echo(render.to_json({"id": event_id}) if as_json else event_id)
    return EXIT_OK
