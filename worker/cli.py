"""The ``contact-sync`` command: inspect the pipeline, manage dead letters, enqueue by hand.

It never imports Celery: it reads and writes Redis through the same modules the worker
uses, so it starts fast and runs on any host that can reach Redis.

Exit status: 0 success, 1 failure (Redis unreachable, an id not found), 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from producers import ContactSyncProducer, EnqueueError, InvalidContactEvent
from worker import _render as render
from worker import importer
from worker._progress import ImportConsole, Progress, summary_text
from worker.deadletters import DeadLetters
from worker.errors import ConfigError
from worker.keys import Keys
from worker.settings import Settings
from worker.status import read_status

__all__ = ["build_parser", "main"]

PROG = "contact-sync"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
FAKE_ACTIVECAMPAIGN = "fake-activecampaign"
REDIS_CONNECT_TIMEOUT_S = 5.0
REDIS_TIMEOUT_S = 10.0

Handler = Callable[[argparse.Namespace, Settings], int]


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status; ``argv`` defaults to ``sys.argv[1:]``."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(arguments)
    except SystemExit as exc:  # argparse's errors, --help and --version: return, don't exit
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except ConfigError as exc:
        _error(f"configuration error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`| head`); silence the flush at exit, as the docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _run(arguments: list[str]) -> int:
    if arguments[:1] == [FAKE_ACTIVECAMPAIGN]:
        # argparse.REMAINDER cannot capture a leading option such as --port or --help,
        # so the emulator's arguments bypass argparse and reach it unchanged.
        return _run_fake_activecampaign(arguments[1:])
    args = build_parser().parse_args(arguments)
    settings = Settings.from_env()
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        where = _redacted_url(settings.redis_url)
        _error(f"cannot reach Redis at {where}: {_one_line(exc)}")
        return EXIT_FAILURE
    except redis.RedisError as exc:
        _error(f"Redis error: {type(exc).__name__}: {_one_line(exc)}")
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect and operate contact-sync (configured by CONTACT_SYNC_* variables).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", help="backlog, schedule, dead letters, limiter")
    _add_json_flag(status)
    status.set_defaults(handler=cmd_status)

    _add_dead_letter_commands(commands)

    enqueue = commands.add_parser("enqueue", help="enqueue one contact change by hand")
    enqueue.add_argument("--email", required=True)
    enqueue.add_argument("--first-name")
    enqueue.add_argument("--last-name")
    enqueue.add_argument("--phone")
    enqueue.add_argument(
        "--field",
        action="append",
        default=[],
        type=_field_assignment,
        metavar="ID=VALUE",
        help="custom field value; repeat for more fields",
    )
    enqueue.add_argument(
        "--occurred-at",
        type=_aware_datetime,
        metavar="ISO8601",
        help="when the change happened, with a UTC offset (default: now)",
    )
    enqueue.add_argument("--source", default="cli", help="where the change came from")
    _add_json_flag(enqueue)
    enqueue.set_defaults(handler=cmd_enqueue)

    metrics = commands.add_parser("metrics", help="serve Prometheus metrics read from Redis")
    metrics.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    metrics.add_argument("--port", type=int, default=9808, help="default: 9808; 0 picks one")
    metrics.set_defaults(handler=cmd_metrics)

    _add_import_command(commands)

    # Listed for --help only: main() hands these arguments to the emulator before argparse.
    commands.add_parser(
        FAKE_ACTIVECAMPAIGN,
        add_help=False,
        help="run the ActiveCampaign HTTP emulator (options: see its --help)",
    )
    return parser


def _add_dead_letter_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    dead = commands.add_parser("dead-letters", help="list, show, replay or purge dead letters")
    actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("--limit", type=_positive_int, default=50, help="default: 50")
    listing.add_argument("--reason", help="only this reason, e.g. api_rejected")
    _add_json_flag(listing)
    listing.set_defaults(handler=cmd_dead_letters_list)

    show = actions.add_parser("show", help="one dead letter in full")
    show.add_argument("id")
    _add_json_flag(show)
    show.set_defaults(handler=cmd_dead_letters_show)

    replay = actions.add_parser("replay", help="re-enqueue dead letters and delete them")
    replay.add_argument("ids", nargs="*", metavar="ID")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    _add_json_flag(replay)
    replay.set_defaults(handler=cmd_dead_letters_replay)

    purge = actions.add_parser("purge", help="delete the given dead letters, or all of them")
    purge.add_argument("ids", nargs="*", metavar="ID")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_json_flag(purge)
    purge.set_defaults(handler=cmd_dead_letters_purge)


def _add_import_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imports = commands.add_parser(
        "import",
        help="backfill contacts from a CSV or JSONL file",
        description="Validate every row of FILE and enqueue the valid ones in batches "
        "(docs/import.md). Line N: line N of a JSONL file, the N-th data row of a CSV file.",
    )
    imports.add_argument("file", type=Path, metavar="FILE")
    imports.add_argument("--format", choices=importer.FORMATS, help="default: from the extension")
    imports.add_argument("--email-column", metavar="COLUMN", help="default: email")
    imports.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ATTRIBUTE=COLUMN",
        help="firstName, lastName or phone from COLUMN (columns so named map themselves)",
    )
    imports.add_argument(
        "--field", action="append", default=[], metavar="ID=COLUMN", help="custom field ID"
    )
    imports.add_argument(
        "--occurred-at",
        type=_aware_datetime,
        metavar="ISO8601",
        help="when the file's values were current, e.g. the export time (default: now)",
    )
    imports.add_argument(
        "--occurred-at-column", metavar="COLUMN", help="per-row time; empty: --occurred-at"
    )
    imports.add_argument("--source", help="default: import:FILE")
    imports.add_argument("--batch-size", type=_positive_int, default=1000, help="default: 1000")
    imports.add_argument("--start-line", type=_positive_int, default=1, metavar="N")
    imports.add_argument("--errors-file", type=Path, metavar="PATH", help="invalid rows, JSONL")
    imports.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
    _add_json_flag(imports)
    imports.set_defaults(handler=cmd_import)


# -- commands -----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    with _connect(settings) as client:
        status = read_status(client, Keys(settings.key_prefix))
    print(render.to_json(status.as_dict()) if args.json else render.status_text(status))
    return EXIT_OK


def cmd_dead_letters_list(args: argparse.Namespace, settings: Settings) -> int:
    with _dead_letters(settings) as store:
        letters = store.list(limit=args.limit, reason=args.reason)
        total = store.count()
    if args.json:
        print(render.to_json([letter.as_dict() for letter in letters]))
    elif not letters:
        print("no dead letters" + (f" with reason {args.reason}" if args.reason else ""))
    else:
        print(render.letters_table(letters))
        if args.reason is None and len(letters) < total:
            print(f"({len(letters)} of {total} shown; use --limit to see more)")
    return EXIT_OK


def cmd_dead_letters_show(args: argparse.Namespace, settings: Settings) -> int:
    with _dead_letters(settings) as store:
        letter = store.get(args.id)
    if letter is None:
        _error(f"no dead letter with id {args.id}")
        return EXIT_FAILURE
    print(render.to_json(letter.as_dict()) if args.json else render.letter_text(letter))
    return EXIT_OK


def cmd_dead_letters_replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.all == bool(args.ids):
        _error("dead-letters replay: give dead letter ids or --all, not both")
        return EXIT_USAGE
    with _dead_letters(settings) as store:
        results = store.replay(store.all_ids() if args.all else args.ids)
    if args.json:
        print(render.to_json(results))
    elif not results:
        print("no dead letters to replay")
    else:
        print(render.table(("ID", "RESULT"), results.items()))
    return EXIT_FAILURE if "not found" in results.values() else EXIT_OK


def cmd_dead_letters_purge(args: argparse.Namespace, settings: Settings) -> int:
    with _dead_letters(settings) as store:
        target = (
            f"{len(args.ids)} dead letter(s)" if args.ids else f"all {store.count()} dead letters"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                _error("dead-letters purge: refusing without --yes (stdin is not a terminal)")
                return EXIT_USAGE
            if _ask(f"Purge {target}? Type 'yes' to continue: ") != "yes":
                _error("purge cancelled; nothing was deleted")
                return EXIT_FAILURE
        purged = store.purge(args.ids or None)
    if args.json:
        print(render.to_json({"purged": purged}))
    else:
        missing = len(args.ids) - purged if args.ids else 0
        print(f"purged {purged} dead letter(s)" + (f" ({missing} not found)" if missing else ""))
    return EXIT_OK


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    fields = dict(args.field)
    if len(fields) < len(args.field):
        _error("enqueue: each custom field may be given only once with --field")
        return EXIT_USAGE
    with _connect(settings) as client:
        producer = ContactSyncProducer(settings.redis_url, settings.key_prefix, client=client)
        try:
            event_id = producer.contact_changed(
                args.email,
                first_name=args.first_name,
                last_name=args.last_name,
                phone=args.phone,
                fields=fields or None,
                occurred_at=args.occurred_at,
                source=args.source,
            )
        except InvalidContactEvent as exc:
            _error("invalid contact event, nothing was enqueued:")
            for line in render.message_lines(exc.messages):
                print(f"  {render.printable(line)}", file=sys.stderr)
            return EXIT_USAGE
        except EnqueueError as exc:
            _error(_one_line(exc))
            return EXIT_FAILURE
    print(render.to_json({"id": event_id}) if args.json else event_id)
    return EXIT_OK


def cmd_metrics(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: prometheus-client is the optional "metrics" extra.
    from importlib.util import find_spec

    if find_spec("prometheus_client") is None:
        _error("metrics needs prometheus-client: pip install 'contact-sync[metrics]'")
        return EXIT_FAILURE
    from worker.logging import celery_setup_logging
    from worker.metrics import serve_metrics

    celery_setup_logging(settings)  # the exporter's warnings are JSON lines like the worker's
    with _connect(settings) as client:
        try:
            return serve_metrics(client, Keys(settings.key_prefix), host=args.host, port=args.port)
        except OSError as exc:  # the port is taken or the address is not this host's
            _error(f"metrics: cannot serve on {args.host}:{args.port}: {_one_line(exc)}")
            return EXIT_FAILURE


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        plan = importer.plan_import(
            args.file,
            fmt=args.format,
            email_column=args.email_column,
            maps=args.map,
            fields=args.field,
            occurred_at_column=args.occurred_at_column,
            source=args.source,
        )
        errors_file = args.errors_file and args.errors_file.open("w", encoding="utf-8")
    except (importer.ImportUsageError, OSError) as exc:
        _error(f"import: {exc}")
        return EXIT_USAGE
    if unused := plan.unused_columns():
        _error(f"import: ignoring columns {', '.join(unused)}")
    progress = Progress(sys.stderr, total=plan.count_rows(), tty=sys.stderr.isatty())
    console = ImportConsole(progress, errors_file)
    with ExitStack() as stack:
        stack.callback(console.close)
        write = None
        if not args.dry_run:
            client = stack.enter_context(_connect(settings))
            client.ping()  # an unreachable Redis fails here, before a row is read
            write = importer.StreamBatchWriter(client, Keys(settings.key_prefix)).write
        summary = importer.run_import(
            plan.records(),
            plan.mapping,
            write=write,
            occurred_at=args.occurred_at or dt.datetime.now(dt.UTC),
            source=plan.source,
            batch_size=args.batch_size,
            start_line=args.start_line,
            on_invalid=console.invalid,
            on_progress=console.update,
        )
    report = {"file": str(args.file), "format": plan.fmt, "dry_run": args.dry_run}
    print(
        render.to_json(report | summary.as_dict())
        if args.json
        else summary_text(summary, dry_run=args.dry_run)
    )
    if summary.resume_line is not None and not args.dry_run:
        line = summary.resume_line
        _error(
            f"import {summary.outcome}"
            + (f": {summary.error}" if summary.error else "")
            + f"; rows before line {line} are done: resume with --start-line {line}"
        )
    # 130, as for any Ctrl+C (see main); invalid rows alone do not fail the import.
    codes = {"complete": EXIT_OK, "interrupted": 130}
    return codes.get(summary.outcome, EXIT_FAILURE)


def _run_fake_activecampaign(argv: list[str]) -> int:
    # Imported here: the emulator is an operations tool that the other commands never need.
    try:
        from fake_activecampaign import main as run_emulator
    except ImportError as exc:
        _error(f"the ActiveCampaign emulator is not available: {exc}")
        return EXIT_FAILURE
    return int(run_emulator(argv))


# -- helpers ------------------------------------------------------------------------------


def _connect(settings: Settings) -> redis.Redis:
    """A client that fails fast when Redis is unreachable, rather than hanging a terminal."""
    try:
        return redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
    except ValueError as exc:  # a URL redis-py cannot parse
        raise ConfigError(
            "CONTACT_SYNC_REDIS_URL", f"{_redacted_url(settings.redis_url)}: {exc}"
        ) from None


@contextmanager
def _dead_letters(settings: Settings) -> Iterator[DeadLetters]:
    with _connect(settings) as client:
        yield DeadLetters(client, Keys(settings.key_prefix))


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _field_assignment(text: str) -> tuple[str, str]:
    field_id, equals, value = text.partition("=")
    if not equals or not field_id.strip():
        raise argparse.ArgumentTypeError(f"expected ID=VALUE, got {text!r}")
    return field_id.strip(), value


def _aware_datetime(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset, e.g. {text}+00:00")
    return moment


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return number


def _ask(prompt: str) -> str:
    # The prompt goes to stderr, so that it never mixes with output piped elsewhere.
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip()


def _redacted_url(url: str) -> str:
    """The URL without user, password and query string, which may carry a password."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _version() -> str:
    try:
        return metadata.version("contact-sync")
    except metadata.PackageNotFoundError:
        return "unknown"
