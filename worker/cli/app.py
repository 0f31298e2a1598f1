"""The root ``contact-sync`` group and ``main()``, which turns every failure into an exit status.

Exit status: 0 success, 1 failure (Redis unreachable, an id not found), 2 usage or
configuration error, 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import click
import redis

from worker.cli.context import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CliState,
    error,
    one_line,
)
from worker.cli.dead_letters import dead_letters
from worker.cli.emulator import fake_activecampaign
from worker.cli.enqueue import enqueue
from worker.cli.import_command import import_file
from worker.cli.metrics import metrics
from worker.cli.status import status
from worker.errors import ConfigError

__all__ = ["cli", "main"]


@click.group(
    commands=[status, dead_letters, enqueue, import_file, metrics, fake_activecampaign],
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="contact-sync", prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Inspect and operate contact-sync (configured by CONTACT_SYNC_* variables)."""


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status; ``argv`` defaults to ``sys.argv[1:]``."""
    state = CliState()
    try:
        # Not standalone: click would call sys.exit(); this returns the status instead,
        # so that tests and other Python callers can run a command in-process.
        result = cli.main(argv, prog_name=PROG, standalone_mode=False, obj=state)
    except click.ClickException as exc:  # usage errors: a bad option, an unknown command
        exc.show()
        return exc.exit_code
    except click.Abort:  # click's form of Ctrl+C
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        error(f"configuration error: {exc}")
        return EXIT_USAGE
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        error(f"cannot reach Redis at {state.redis_location()}: {one_line(exc)}")
        return EXIT_FAILURE
    except redis.RedisError as exc:
        error(f"Redis error: {type(exc).__name__}: {one_line(exc)}")
        return EXIT_FAILURE
    except SystemExit as exc:
        # Even when not standalone, click exits on a broken pipe (`contact-sync ... | head`),
        # after making further writes to stdout harmless.
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    # Every command returns its status; --help and --version return click's (0).
    return result if isinstance(result, int) else EXIT_OK
