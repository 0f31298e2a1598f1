"""``contact-sync fake-activecampaign``: the ActiveCampaign HTTP emulator, from ``ops/``."""

from __future__ import annotations

import click

from worker.cli.context import EXIT_FAILURE, error

__all__ = ["fake_activecampaign"]


@click.command(
    "fake-activecampaign",
    # Every argument, --help included, is the emulator's: it has its own parser.
    context_settings={"ignore_unknown_options": True},
    add_help_option=False,
    short_help="Run the ActiveCampaign HTTP emulator.",
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def fake_activecampaign(argv: tuple[str, ...]) -> int:
    """Run the ActiveCampaign HTTP emulator (options: see its --help)."""
    # Imported here: the emulator is an operations tool that the other commands never need.
    try:
        from fake_activecampaign import main as run_emulator
    except ImportError as exc:
        error(f"the ActiveCampaign emulator is not available: {exc}")
        return EXIT_FAILURE
    return int(run_emulator(list(argv)))
