"""``contact-sync status``: the pipeline's state, as read by ``worker.status``.

With one destination (``default``) it prints what it always printed. With several, the
stream and the pump once, then each destination's figures side by side.
"""

from __future__ import annotations

import click

from worker.cli import render
from worker.cli.context import EXIT_OK, CliState, json_option, pass_state
from worker.status import read_overview

__all__ = ["status"]


@click.command()
@json_option
@pass_state
def status(state: CliState, as_json: bool) -> int:
    """Backlog, schedule, dead letters and limiter, per destination."""
    with state.connect() as client:
        figures = read_overview(client, state.keys, state.destinations).as_dict()
    click.echo(render.to_json(figures) if as_json else render.status_text(figures))
    return EXIT_OK
