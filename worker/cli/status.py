"""``contact-sync status``: the pipeline's state, as read by ``worker.status``."""

from __future__ import annotations

import click

from worker.cli import render
from worker.cli.context import EXIT_OK, CliState, json_option, pass_state
from worker.status import read_status

__all__ = ["status"]


@click.command()
@json_option
@pass_state
def status(state: CliState, as_json: bool) -> int:
    """Backlog, schedule, dead letters and limiter."""
    with state.connect() as client:
        figures = read_status(client, state.keys).as_dict()
    click.echo(render.to_json(figures) if as_json else render.status_text(figures))
    return EXIT_OK
