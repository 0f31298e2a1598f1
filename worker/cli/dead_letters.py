"""``contact-sync dead-letters``: list, show, replay and purge a destination's dead letters.

``--destination NAME`` (``default`` when left out) picks the destination; ``default``'s
also hold the entries no destination took (``invalid_event``, ``unknown_destination``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from worker.cli import render
from worker.cli.context import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliState,
    destination_option,
    error,
    json_option,
    pass_state,
)
from worker.deadletters import DeadLetters
from worker.keys import DEFAULT_DESTINATION

__all__ = ["dead_letters"]


@click.group("dead-letters")
def dead_letters() -> None:
    """List, show, replay or purge dead letters."""


@contextmanager
def _store(state: CliState, destination: str) -> Iterator[DeadLetters]:
    """The dead letters of ``destination``; an unknown name fails before Redis is reached."""
    keys = state.keys_for(destination)
    with state.connect() as client:
        yield DeadLetters(client, keys)


@dead_letters.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--reason", help="Only this reason, e.g. api_rejected.")
@destination_option
@json_option
@pass_state
def list_letters(
    state: CliState, limit: int, reason: str | None, destination: str, as_json: bool
) -> int:
    """Dead letters, oldest first."""
    with _store(state, destination) as store:
        letters = store.list(limit=limit, reason=reason)
        total = store.count()
    if as_json:
        click.echo(render.to_json([letter.as_dict() for letter in letters]))
    elif not letters:
        where = "" if destination == DEFAULT_DESTINATION else f" for destination {destination}"
        click.echo("no dead letters" + (f" with reason {reason}" if reason else "") + where)
    else:
        click.echo(render.letters_table(letters))
        if reason is None and len(letters) < total:
            click.echo(f"({len(letters)} of {total} shown; use --limit to see more)")
    return EXIT_OK


@dead_letters.command()
@click.argument("letter_id", metavar="ID")
@destination_option
@json_option
@pass_state
def show(state: CliState, letter_id: str, destination: str, as_json: bool) -> int:
    """One dead letter in full."""
    with _store(state, destination) as store:
        letter = store.get(letter_id)
    if letter is None:
        error(f"no dead letter with id {letter_id}")
        return EXIT_FAILURE
    click.echo(render.to_json(letter.as_dict()) if as_json else render.letter_text(letter))
    return EXIT_OK


@dead_letters.command()
@click.argument("letter_ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option("--reason", help="With --all: only this reason, e.g. unknown_field.")
@destination_option
@json_option
@pass_state
def replay(
    state: CliState,
    letter_ids: tuple[str, ...],
    replay_all: bool,
    reason: str | None,
    destination: str,
    as_json: bool,
) -> int:
    """Re-enqueue dead letters and delete them; their changes go to the same destination."""
    if replay_all == bool(letter_ids):
        raise click.UsageError("give dead letter ids or --all, not both")
    if reason is not None and not replay_all:
        raise click.UsageError("--reason goes with --all")
    with _store(state, destination) as store:
        results = store.replay_all(reason=reason) if replay_all else store.replay(letter_ids)
    if as_json:
        click.echo(render.to_json(results))
    elif not results:
        click.echo("no dead letters to replay")
    else:
        click.echo(render.table(("ID", "RESULT"), results.items()))
    return EXIT_FAILURE if "not found" in results.values() else EXIT_OK


@dead_letters.command()
@click.argument("letter_ids", nargs=-1, metavar="[ID]...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reason", help="Without ids: only the letters with this reason.")
@destination_option
@json_option
@pass_state
def purge(
    state: CliState,
    letter_ids: tuple[str, ...],
    yes: bool,
    reason: str | None,
    destination: str,
    as_json: bool,
) -> int:
    """Delete the given dead letters, or all of them (with --reason, all of that reason)."""
    if reason is not None and letter_ids:
        raise click.UsageError("give dead letter ids or --reason, not both")
    with _store(state, destination) as store:
        if not yes:
            if not sys.stdin.isatty():
                error("dead-letters purge: refusing without --yes (stdin is not a terminal)")
                return EXIT_USAGE
            if letter_ids:
                target = f"{len(letter_ids)} dead letter(s)"
            elif reason is not None:
                target = f"every dead letter with reason {reason}"
            else:
                target = f"all {store.count()} dead letters"
            question = f"Purge {target} of destination {destination}? Type 'yes' to continue"
            if not _typed_yes(question):
                error("purge cancelled; nothing was deleted")
                return EXIT_FAILURE
        purged = store.purge(letter_ids) if letter_ids else store.purge_all(reason=reason)
    if as_json:
        click.echo(render.to_json({"purged": purged}))
    else:
        missing = len(letter_ids) - purged if letter_ids else 0
        click.echo(
            f"purged {purged} dead letter(s)" + (f" ({missing} not found)" if missing else "")
        )
    return EXIT_OK


def _typed_yes(question: str) -> bool:
    """Ask on stderr (stdout may be piped); only the whole word "yes" agrees.

    Not ``click.confirm``: it takes a bare "y", and a purge cannot be undone.
    """
    try:
        answer = click.prompt(question, default="", show_default=False, err=True)
    except click.Abort:  # end of input or Ctrl+C: no answer is not a yes
        return False
    return answer.strip() == "yes"
