"""What every ``contact-sync`` command shares: settings, Redis, option types and messages."""

from __future__ import annotations

import datetime as dt
from functools import cached_property

import click
import redis

from producers import ContactSyncProducer
from worker.keys import DEFAULT_DESTINATION, Keys
from worker.redis_client import connect, redacted_url
from worker.settings import Settings
from worker.status import reported_destinations

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CliState",
    "aware_datetime",
    "destination_option",
    "error",
    "field_assignment",
    "json_option",
    "list_subscription",
    "one_line",
    "pass_state",
]

PROG = "contact-sync"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl+C (128 + SIGINT)


class CliState:
    """The settings and Redis connections of one command run.

    Settings are read from the environment on first use, not when the command line is
    parsed, so ``--help`` and usage errors never depend on the environment.
    """

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @property
    def keys(self) -> Keys:
        """The keys of ``default``, and of what all destinations share (the stream)."""
        return Keys(self.settings.key_prefix)

    @property
    def destinations(self) -> tuple[str, ...]:
        """The destinations status, metrics and dead letters cover: the configured ones,
        and ``default`` (which holds the dead letters of events no destination takes)."""
        return reported_destinations(self.settings.destination_names)

    def keys_for(self, destination: str) -> Keys:
        """The keys of one destination; a name not configured is a usage error that lists
        the names that are (raised here, once the settings are read, not while parsing)."""
        if destination not in self.destinations:
            raise click.BadParameter(
                f"no destination named {destination!r}; "
                f"the configured ones are: {', '.join(self.destinations)}",
                ctx=click.get_current_context(silent=True),
                param_hint="'--destination'",
            )
        return self.keys.for_destination(destination)

    def connect(self) -> redis.Redis:
        """A client for CONTACT_SYNC_REDIS_URL (no connection until its first command)."""
        return connect(self.settings.redis_url)

    def producer(self) -> ContactSyncProducer:
        """A producer on a client of its own from ``connect()``; close it when done."""
        return ContactSyncProducer(
            key_prefix=self.settings.key_prefix,
            client=self.connect(),
            min_replicas=self.settings.producer_min_replicas,
            wait_timeout_ms=self.settings.producer_wait_timeout_ms,
        )

    def redis_location(self) -> str:
        """Where Redis is, for messages: the URL without its credentials."""
        return redacted_url(self.settings.redis_url)


#: Hands a command the run's CliState (``main`` passes one; a bare ``cli()`` gets a new one).
pass_state = click.make_pass_decorator(CliState, ensure=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

destination_option = click.option(
    "--destination",
    default=DEFAULT_DESTINATION,
    show_default=True,
    metavar="NAME",
    help="The destination (ActiveCampaign account) whose dead letters to use.",
)


def aware_datetime(text: str) -> dt.datetime:
    """An option value in ISO 8601 with a UTC offset; click reports the ValueError as usage."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"needs a UTC offset, e.g. {text}+00:00")
    return moment


def field_assignment(text: str) -> tuple[str, str]:
    """``REF=VALUE`` as ``(ref, value)``, REF an id, ``%PERSTAG%`` or title; the value may
    itself hold ``=``, so a title cannot."""
    ref, equals, value = text.partition("=")
    if not equals or not ref.strip():
        raise ValueError(f"expected REF=VALUE, got {text!r}")
    return ref.strip(), value


_LIST_STATUSES = ("subscribed", "unsubscribed")


def list_subscription(text: str) -> tuple[str, str]:
    """``REF=subscribed`` or ``REF=unsubscribed`` (any case) as ``(ref, status)``, REF a
    list's id or name; split at the last ``=``, so a name may hold one."""
    ref, equals, status = text.rpartition("=")
    status = status.strip().lower()
    if not equals or not ref.strip() or status not in _LIST_STATUSES:
        raise ValueError(f"expected REF=subscribed or REF=unsubscribed, got {text!r}")
    return ref.strip(), status


def error(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    click.echo(f"{PROG}: {message}", err=True)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (redis-py's can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
