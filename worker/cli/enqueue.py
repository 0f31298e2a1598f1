"""``contact-sync enqueue``: one contact change by hand, through the producer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from contextlib import closing
from typing import TypeVar

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
    list_subscription,
    one_line,
    pass_state,
)
from worker.errors import EnqueueError, InvalidContactEvent

__all__ = ["enqueue"]


_Ref = TypeVar("_Ref", bound=int | str)
_V = TypeVar("_V")


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
    metavar="REF=VALUE",
    help="Custom field by id, %PERSTAG% or title.",
)
@click.option("--tag", "tags", multiple=True, metavar="NAME", help="Add the tag.")
@click.option("--untag", "untags", multiple=True, metavar="NAME", help="Remove the tag.")
@click.option(
    "--list",
    "lists",
    multiple=True,
    type=list_subscription,
    metavar="REF=STATUS",
    help="List by id or name: subscribed|unsubscribed.",
)
@click.option("--account", metavar="NAME", help='The contact\'s company; "" unlinks it.')
@click.option(
    "--occurred-at",
    type=aware_datetime,
    metavar="ISO8601",
    help="When the change happened, with a UTC offset.  [default: now]",
)
@click.option("--source", default="cli", show_default=True, help="Where the change came from.")
@click.option(
    "--destination",
    metavar="NAME",
    help="The ActiveCampaign account (a name in the workers' CONTACT_SYNC_DESTINATIONS_FILE); "
    "a name the workers do not know is dead-lettered.  [default: default]",
)
@json_option
@pass_state
def enqueue(
    state: CliState,
    email: str,
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    fields: tuple[tuple[str, str], ...],
    tags: tuple[str, ...],
    untags: tuple[str, ...],
    lists: tuple[tuple[str, str], ...],
    account: str | None,
    occurred_at: dt.datetime | None,
    source: str,
    destination: str | None,
    as_json: bool,
) -> int:
    """Enqueue one contact change by hand.

    An option left out means "unchanged"; "" is a value. --field, --tag, --untag and
    --list may be repeated.
    """
    field_values: dict[int | str, str] = _by_reference(
        "custom field", (("--field", *pair) for pair in fields)
    )
    tag_changes = _by_reference(
        "tag",
        [*(("--tag", name, True) for name in tags), *(("--untag", name, False) for name in untags)],
    )
    list_statuses: dict[int | str, str] = _by_reference(
        "list", (("--list", *pair) for pair in lists)
    )
    with closing(state.producer()) as producer:
        try:
            event_id = producer.contact_changed(
                email,
                first_name=first_name,
                last_name=last_name,
                phone=phone,
                fields=field_values or None,
                tags=tag_changes or None,
                lists=list_statuses or None,
                account=account,
                occurred_at=occurred_at,
                source=source,
                destination=destination,
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


def _by_reference(noun: str, given: Iterable[tuple[str, _Ref, _V]]) -> dict[_Ref, _V]:
    """``(flag, reference, value)`` triples as the producer's mapping.

    A reference given twice, in any case, is a usage error that names its flags: the
    producer would refuse the case-insensitive repeat without naming a flag, and a dict
    would silently keep one of two exact repeats.
    """
    values: dict[_Ref, _V] = {}
    flag_of: dict[str, str] = {}  # reference, case-folded -> the flag that gave it
    for flag, ref, value in given:
        folded = str(ref).strip().casefold()
        if folded in flag_of:
            first = flag_of[folded]
            hint = f"'{flag}'" if first == flag else f"'{first}' / '{flag}'"
            what = "more than once" if first == flag else f"to both {first} and {flag}"
            raise click.BadParameter(f"{noun} {ref!r} is given {what}", param_hint=hint)
        flag_of[folded] = flag
        values[ref] = value
    return values
