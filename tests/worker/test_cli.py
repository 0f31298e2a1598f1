"""worker.cli: the contact-sync command, run in-process against a private Redis."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import redis

from tests._redis_server import free_port
from worker.cli import main
from worker.cli.render import status_text
from worker.schema import decode_event
from worker.stamp import order_key
from worker.status import Status

EMAIL = "jon@example.com"
TOKEN = "ac-token-never-print-me"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 11, 29, 13, 0, 0, 123456, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(minutes=5)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str) -> None:
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("ACTIVECAMPAIGN_API_TOKEN", TOKEN)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    return code, out, err


def order(when: dt.datetime, entry_id: str = "1764421200000-0") -> str:
    return order_key((when - EPOCH) // dt.timedelta(microseconds=1), entry_id)


def add_sync_letter(client: redis.Redis, prefix: str, **fields: object) -> str:
    """A dead letter in the shape worker/lua/finish.lua writes."""
    entry = {
        "reason": "api_rejected",
        "email": EMAIL,
        "status": "422",
        "errors": json.dumps(["Email is invalid", "Phone is too long"]),
        "attributes": json.dumps(
            {"firstName": ["Jon", order(T1)], "field:6": ["2008-01-20", order(T2)]}
        ),
        "attempts": 1,
        "first_attempt_at": 1764421200000,
        "dead_at": 1764421205000,
        **fields,
    }
    return client.xadd(f"{prefix}:dead", entry).decode()  # type: ignore[arg-type]


def add_invalid_letter(client: redis.Redis, prefix: str) -> str:
    """A dead letter in the shape worker/lua/ingest.lua writes for an invalid event."""
    raw = json.dumps({"v": 1, "id": "e-1", "contact": {"email": "nope"}})
    entry = {
        "reason": "invalid_event",
        "errors": json.dumps({"contact": {"email": ["Not a valid email address."]}}),
        "raw": raw,
        "event_id": "e-1",
        "entry": "1764421100000-0",
        "dead_at": 1764421105000,
    }
    return client.xadd(f"{prefix}:dead", entry).decode()  # type: ignore[arg-type]


def value_of(status_text: str, label: str) -> str:
    """The value printed next to ``label`` in `status` output."""
    for line in status_text.splitlines():
        name, _, value = line.strip().partition("  ")
        if name == label:
            return value.strip()
    raise AssertionError(f"no {label!r} line in:\n{status_text}")


def events(client: redis.Redis, prefix: str) -> list[str]:
    return [fields[b"event"].decode() for _, fields in client.xrange(f"{prefix}:events")]


# -- status ---------------------------------------------------------------------------------


def test_status_on_an_empty_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    """`status` on a fresh prefix prints every section, with zeros and '-' for no age."""
    code, out, _ = run(capsys, "status")

    assert code == 0
    for label in ("Stream", "Schedule", "Dead letters", "Limiter", "Pump running", "Counters"):
        assert label in out
    assert value_of(out, "oldest event age") == "-"
    assert value_of(out, "backlog") == "0"
    assert value_of(out, "Pump running") == "no"


def test_status_counts_the_backlog_after_enqueueing(capsys: pytest.CaptureFixture[str]) -> None:
    """Enqueued events show as backlog, in text and JSON, and status never shows an email."""
    for name in ("a", "b"):
        assert run(capsys, "enqueue", "--email", f"{name}@example.com")[0] == 0

    _, text, _ = run(capsys, "status")
    code, out, _ = run(capsys, "status", "--json")

    assert code == 0
    assert value_of(text, "backlog") == "2"
    document = json.loads(out)
    assert document["stream_backlog"] == 2
    assert document["oldest_event_age_s"] is not None
    assert "@example.com" not in text + out


def test_status_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """`status --json` prints one JSON object whose keys are the Status fields."""
    code, out, _ = run(capsys, "status", "--json")

    assert code == 0
    assert set(json.loads(out)) == {field.name for field in dataclasses.fields(Status)}


def test_installed_script_prints_status_json(redis_url: str, key_prefix: str) -> None:
    """The installed `contact-sync status --json` runs end to end in its own process."""
    script = Path(sys.executable).with_name("contact-sync")
    if not script.exists():
        pytest.skip("the contact-sync console script is not installed next to this Python")
    env = {**os.environ, "CONTACT_SYNC_REDIS_URL": redis_url, "CONTACT_SYNC_KEY_PREFIX": key_prefix}

    done = subprocess.run(
        [str(script), "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stream_backlog"] == 0


def test_cli_does_not_import_celery() -> None:
    """Importing and running the CLI module never imports Celery or kombu."""
    code = (
        "import sys, worker.cli; "
        "sys.exit(any(m.split('.')[0] in {'celery', 'kombu'} for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_status_text_lists_figures_it_has_no_place_for() -> None:
    """A figure `status` does not know yet is still printed, after the known ones; a missing one is left out."""
    figures = {"stream_backlog": 3, "pump_running": True, "dead_letters_trimmed": 7, "counters": {}}

    text = status_text(figures)

    assert value_of(text, "backlog") == "3"
    assert value_of(text, "Pump running") == "yes"
    assert value_of(text, "Dead letters trimmed") == "7"
    assert "unacked" not in text


# -- errors shared by every command ---------------------------------------------------------


def test_config_error_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid setting prints one line naming the variable and exits 2."""
    monkeypatch.setenv("CONTACT_SYNC_DEBOUNCE_S", "abc")

    code, out, err = run(capsys, "status")

    assert code == 2
    assert out == ""
    assert err.startswith("contact-sync: configuration error: CONTACT_SYNC_DEBOUNCE_S")
    assert err.count("\n") == 1


def test_unreachable_redis_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis unreachable, the CLI prints one line without the URL's password; exits 1."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", f"redis://:s3cret@127.0.0.1:{free_port()}/0")

    for argv in (["status"], ["dead-letters", "list"], ["enqueue", "--email", EMAIL]):
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert err.startswith("contact-sync: ")
        assert err.count("\n") == 1
        assert "Traceback" not in err
        assert "s3cret" not in err


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["dead-letters", "list", "-h"]])
def test_help_prints_usage_and_exits_0(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """-h and --help print the usage of the command they follow and return 0."""
    code, out, _ = run(capsys, *argv)

    assert code == 0
    assert out.startswith(f"Usage: contact-sync {' '.join(argv[:-1])}".rstrip())


def test_usage_errors_exit_2_with_the_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command or option prints the usage and the error on stderr and returns 2."""
    for argv in (["no-such-command"], ["status", "--no-such-option"], []):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert out == ""
        assert "Usage: contact-sync" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the program name and version and returns 0."""
    code, out, _ = run(capsys, "--version")

    assert code == 0
    assert out.startswith("contact-sync ")


# -- enqueue --------------------------------------------------------------------------------


def test_enqueue_prints_the_id_and_writes_the_event(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`enqueue` validates, XADDs one event carrying every option and prints its id."""
    code, out, _ = run(
        capsys,
        "enqueue",
        "--email",
        " Jon@Example.com ",
        "--first-name",
        "Jon",
        "--phone",
        "",
        "--field",
        "6=2008-01-20",
        "--field",
        "1=a=b",
        "--occurred-at",
        "2026-11-29T14:00:00.123456+01:00",
        "--source",
        "ops:test",
    )

    assert code == 0
    (raw,) = events(redis_client, key_prefix)
    event = decode_event(raw)
    assert out.strip() == event.id
    assert event.email == EMAIL
    assert event.attributes == {
        "firstName": "Jon",
        "phone": "",
        "field:6": "2008-01-20",
        "field:1": "a=b",
    }
    assert event.occurred_at == T1
    assert event.source == "ops:test"


def test_enqueue_waits_for_replicas_and_fails_clearly_without_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CONTACT_SYNC_PRODUCER_MIN_REPLICAS=1 on a Redis without replicas, `enqueue` does not report the event as sent: WAIT times out and it exits non-zero saying so."""
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "1")
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS", "50")
    code, out, err = run(capsys, "enqueue", "--email", EMAIL)
    assert code != 0
    assert "replica" in err.lower()
    assert out == ""


def test_enqueue_json_prints_the_id(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`enqueue --json` prints {"id": ...} for the event it wrote."""
    code, out, _ = run(capsys, "enqueue", "--email", EMAIL, "--json")

    assert code == 0
    assert json.loads(out)["id"] == decode_event(events(redis_client, key_prefix)[0]).id


def test_enqueue_invalid_email_exits_2_with_the_message(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """An invalid contact prints marshmallow's message per field, exits 2, enqueues nothing."""
    code, out, err = run(capsys, "enqueue", "--email", "not-an-email")

    assert code == 2
    assert out == ""
    assert "  email: Not a valid email address." in err
    assert events(redis_client, key_prefix) == []


def test_enqueue_writes_fields_by_any_reference_tags_lists_and_account(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """--field by id, perstag and title, --tag, --untag, --list and --account all reach the v2 event."""
    code, _, err = run(
        capsys,
        "enqueue",
        *("--email", EMAIL, "--field", "6=x", "--field", "%shirt_size%=L"),
        *("--field", "Company size=10-50", "--tag", "trial", "--tag", "VIP"),
        *("--untag", "churned", "--list", "Newsletter=subscribed", "--list", "3=Unsubscribed"),
        *("--list", "Tips=Tricks=subscribed", "--account", "Acme Inc"),
    )

    assert code == 0, err
    (raw,) = events(redis_client, key_prefix)
    assert json.loads(raw)["v"] == 2
    assert decode_event(raw).attributes == {
        "field:6": "x",
        "field:%SHIRT_SIZE%": "L",
        "field:Company size": "10-50",
        "tag:trial": "1",
        "tag:VIP": "1",
        "tag:churned": "0",
        "list:Newsletter": "1",
        "list:3": "2",
        "list:Tips=Tricks": "1",  # split at the last "=": a list name may hold one
        "account": "Acme Inc",
    }


def test_enqueue_empty_account_unlinks_and_no_account_leaves_it(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`--account ""` writes account "" (unlink); without --account the event has no account."""
    assert run(capsys, "enqueue", "--email", EMAIL, "--account", "")[0] == 0
    assert run(capsys, "enqueue", "--email", EMAIL)[0] == 0

    unlink, unchanged = (decode_event(raw) for raw in events(redis_client, key_prefix))
    assert unlink.attributes == {"account": ""}
    assert unchanged.attributes == {}


def refused_enqueue(
    capsys: pytest.CaptureFixture[str], client: redis.Redis, prefix: str, argv: list[str]
) -> str:
    """Run `enqueue` with ``argv``, check that it exits 2, prints nothing on stdout and
    enqueues nothing; return its stderr."""
    code, out, err = run(capsys, "enqueue", "--email", EMAIL, *argv)
    assert code == 2
    assert out == ""
    assert events(client, prefix) == []
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--field", "no-equals-sign"], "'--field': expected REF=VALUE"),
        (
            ["--field", "6=a", "--field", "6=b"],
            "'--field': custom field '6' is given more than once",
        ),
        (
            ["--field", "Size=a", "--field", " size =b"],
            "'--field': custom field 'size' is given more than once",
        ),
        (["--tag", "a", "--tag", "a"], "'--tag': tag 'a' is given more than once"),
        (["--untag", "a", "--untag", "A"], "'--untag': tag 'A' is given more than once"),
        (
            ["--tag", "trial", "--untag", "Trial"],
            "'--tag' / '--untag': tag 'Trial' is given to both --tag and --untag",
        ),
        (["--list", "Newsletter"], "'--list': expected REF=subscribed or REF=unsubscribed"),
        (["--list", "Newsletter=yes"], "'--list': expected REF=subscribed or REF=unsubscribed"),
        (["--list", "=subscribed"], "'--list': expected REF=subscribed or REF=unsubscribed"),
        (
            ["--list", "3=subscribed", "--list", "3=unsubscribed"],
            "'--list': list '3' is given more than once",
        ),
        (["--occurred-at", "2026-11-29T13:00:00"], "'--occurred-at': needs a UTC offset"),
        (["--occurred-at", "yesterday"], "'--occurred-at': not an ISO 8601"),
    ],
)
def test_enqueue_rejects_malformed_options(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    key_prefix: str,
    argv: list[str],
    message: str,
) -> None:
    """Malformed or repeated --field, --tag, --untag, --list and --occurred-at values are usage errors naming the option."""
    err = refused_enqueue(capsys, redis_client, key_prefix, argv)

    assert "Usage: contact-sync enqueue" in err
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--field", "%SHIRT SIZE%=L"], "fields.%SHIRT SIZE%.field: Perstag must be letters"),
        (["--tag", "a\x01b"], "tags.a\\x01b: Tag name must not contain control characters."),
        (["--list", "0=subscribed"], "lists.0: List id must be a positive integer."),
        (["--account", "  "], "account: Account name must not be blank."),
    ],
)
def test_enqueue_reports_the_producers_messages_for_bad_references(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    key_prefix: str,
    argv: list[str],
    message: str,
) -> None:
    """A reference or name the schema refuses prints the producer's message for it, exits 2 and enqueues nothing."""
    err = refused_enqueue(capsys, redis_client, key_prefix, argv)

    assert err.startswith("contact-sync: invalid contact event, nothing was enqueued:")
    assert f"  {message}" in err


# -- dead letters ---------------------------------------------------------------------------


def test_dead_letters_list_renders_both_kinds(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`list` shows id, reason, whole email, status and compact errors of either shape."""
    sync_id = add_sync_letter(redis_client, key_prefix)
    invalid_id = add_invalid_letter(redis_client, key_prefix)

    code, out, _ = run(capsys, "dead-letters", "list")

    assert code == 0
    header, sync_line, invalid_line = out.splitlines()
    assert header.split() == ["ID", "REASON", "EMAIL", "STATUS", "ERRORS", "DEAD", "AT"]
    assert sync_line.startswith(sync_id)
    assert EMAIL in sync_line
    assert "422" in sync_line
    assert "Email is invalid; Phone is too long" in sync_line
    assert invalid_line.startswith(invalid_id)
    assert "contact.email: Not a valid email address." in invalid_line


def test_dead_letters_list_json_limit_and_reason(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`list --json` prints a JSON list, honouring --limit and --reason."""
    add_invalid_letter(redis_client, key_prefix)
    sync_id = add_sync_letter(redis_client, key_prefix)

    _, limited, _ = run(capsys, "dead-letters", "list", "--json", "--limit", "1")
    _, by_reason, _ = run(capsys, "dead-letters", "list", "--json", "--reason", "api_rejected")
    _, text, _ = run(capsys, "dead-letters", "list", "--limit", "1")

    assert [letter["reason"] for letter in json.loads(limited)] == ["invalid_event"]
    (letter,) = json.loads(by_reason)
    assert letter["id"] == sync_id
    assert letter["email"] == EMAIL
    assert letter["attributes"] == {"firstName": "Jon", "field:6": "2008-01-20"}
    assert "(1 of 2 shown" in text


def test_dead_letters_show_prints_everything(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`show` prints attributes with their occurred_at, and an invalid event's raw JSON."""
    sync_id = add_sync_letter(redis_client, key_prefix)
    invalid_id = add_invalid_letter(redis_client, key_prefix)

    _, sync_text, _ = run(capsys, "dead-letters", "show", sync_id)
    _, invalid_text, _ = run(capsys, "dead-letters", "show", invalid_id)
    code, out, _ = run(capsys, "dead-letters", "show", invalid_id, "--json")

    assert code == 0
    assert EMAIL in sync_text
    assert '"Jon"' in sync_text
    assert T1.isoformat() in sync_text
    assert "Phone is too long" in sync_text
    assert '"email": "nope"' in invalid_text  # the raw event, pretty-printed
    document = json.loads(out)
    assert document["raw"].startswith('{"v": 1')
    assert document["errors"] == {"contact": {"email": ["Not a valid email address."]}}
    assert document["entry"] == "1764421100000-0"


def test_dead_letters_show_escapes_control_characters(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """Raw text from a producer cannot send terminal escape sequences through `show`."""
    entry = {"reason": "invalid_event", "raw": "\x1b]0;pwned\x07not json", "dead_at": 1}
    letter_id = redis_client.xadd(f"{key_prefix}:dead", entry).decode()  # type: ignore[arg-type]

    _, out, _ = run(capsys, "dead-letters", "show", letter_id)

    assert "\x1b" not in out
    assert "\\x1b]0;pwned\\x07not json" in out


def test_dead_letters_show_unknown_id_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """`show` of an id that does not exist says so and exits 1."""
    code, out, err = run(capsys, "dead-letters", "show", "1-1")

    assert (code, out) == (1, "")
    assert "no dead letter with id 1-1" in err


def test_replay_reenqueues_the_original_changes(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`replay ID` adds events with the original occurred_at and values, and drops the letter."""
    letter_id = add_sync_letter(redis_client, key_prefix)

    code, out, _ = run(capsys, "dead-letters", "replay", letter_id)

    assert code == 0
    assert out.splitlines()[1].split(None, 1) == [letter_id, "replayed"]
    replayed = [decode_event(raw) for raw in events(redis_client, key_prefix)]
    assert [(event.occurred_at, event.attributes) for event in replayed] == [
        (T1, {"firstName": "Jon"}),
        (T2, {"field:6": "2008-01-20"}),
    ]
    assert {event.email for event in replayed} == {EMAIL}
    assert redis_client.xlen(f"{key_prefix}:dead") == 0


def test_replay_all_json(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`replay --all --json` replays every letter and prints the result per id."""
    ids = [add_invalid_letter(redis_client, key_prefix), add_sync_letter(redis_client, key_prefix)]

    code, out, _ = run(capsys, "dead-letters", "replay", "--all", "--json")

    assert code == 0
    assert json.loads(out) == dict.fromkeys(ids, "replayed")
    assert len(events(redis_client, key_prefix)) == 3  # the raw event, then two sync changes


def test_replay_all_and_purge_take_a_reason(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`replay --all --reason R` and `purge --reason R --yes` touch only the letters with reason R."""
    invalid = [add_invalid_letter(redis_client, key_prefix) for _ in range(2)]
    rejected = add_sync_letter(redis_client, key_prefix)

    code, out, _ = run(
        capsys, "dead-letters", "replay", "--all", "--reason", "api_rejected", "--json"
    )
    assert code == 0
    assert json.loads(out) == {rejected: "replayed"}

    code, out, _ = run(
        capsys, "dead-letters", "purge", "--reason", "invalid_event", "--yes", "--json"
    )
    assert code == 0
    assert json.loads(out) == {"purged": len(invalid)}
    assert redis_client.xlen(f"{key_prefix}:dead") == 0

    code, _, err = run(capsys, "dead-letters", "replay", "--reason", "x", rejected)
    assert code == 2
    assert "--reason goes with --all" in err


def test_replay_unknown_id_exits_1(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`replay` of unknown ids still replays the known ones, reports the rest, and exits 1."""
    letter_id = add_sync_letter(redis_client, key_prefix)

    code, out, _ = run(capsys, "dead-letters", "replay", letter_id, "1-1", "garbage")

    assert code == 1
    rows = [line.split(None, 1) for line in out.splitlines()[1:]]
    assert rows == [[letter_id, "replayed"], ["1-1", "not found"], ["garbage", "not found"]]


def test_replay_needs_ids_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    """`replay` with neither ids nor --all (or with both) is a usage error."""
    assert run(capsys, "dead-letters", "replay")[0] == 2
    assert run(capsys, "dead-letters", "replay", "1-1", "--all")[0] == 2


def test_purge_with_yes_deletes_all_and_prints_the_count(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`purge --yes` without ids deletes every dead letter and prints how many."""
    add_sync_letter(redis_client, key_prefix)
    add_invalid_letter(redis_client, key_prefix)

    code, out, _ = run(capsys, "dead-letters", "purge", "--yes")

    assert code == 0
    assert out.strip() == "purged 2 dead letter(s)"
    assert redis_client.xlen(f"{key_prefix}:dead") == 0


def test_purge_ids_with_yes_deletes_only_those(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`purge ID... --yes --json` deletes the given letters and reports the count."""
    gone = add_sync_letter(redis_client, key_prefix)
    kept = add_invalid_letter(redis_client, key_prefix)

    code, out, _ = run(capsys, "dead-letters", "purge", gone, "1-1", "--yes", "--json")

    assert code == 0
    assert json.loads(out) == {"purged": 1}
    assert [entry_id.decode() for entry_id, _ in redis_client.xrange(f"{key_prefix}:dead")] == [
        kept
    ]


def test_purge_without_yes_and_no_tty_refuses(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """Without --yes and without a terminal to ask on, `purge` deletes nothing and exits 2."""
    add_sync_letter(redis_client, key_prefix)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))

    code, _, err = run(capsys, "dead-letters", "purge")

    assert code == 2
    assert "--yes" in err
    assert redis_client.xlen(f"{key_prefix}:dead") == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("yes\n", 0, 0), ("y\n", 1, 1), ("", 1, 1)])
def test_purge_asks_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
    key_prefix: str,
    answer: str,
    code: int,
    left: int,
) -> None:
    """On a terminal `purge` asks first, and only the answer "yes" deletes anything."""
    add_sync_letter(redis_client, key_prefix)
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))

    result, _, err = run(capsys, "dead-letters", "purge")

    assert result == code
    assert "Type 'yes'" in err
    assert redis_client.xlen(f"{key_prefix}:dead") == left


# -- several destinations -------------------------------------------------------------------


@pytest.fixture
def two_destinations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTACT_SYNC_DESTINATIONS_FILE naming destinations a and b, each with a token file."""
    document = {}
    for name in ("a", "b"):
        token_file = tmp_path / f"{name}.token"
        token_file.write_text(f"token-of-{name}\n")
        document[name] = {"url": "http://127.0.0.1:1", "token_file": str(token_file)}
    destinations = tmp_path / "destinations.json"
    destinations.write_text(json.dumps(document))
    monkeypatch.delenv("ACTIVECAMPAIGN_API_TOKEN")  # the file names every account
    monkeypatch.setenv("CONTACT_SYNC_DESTINATIONS_FILE", str(destinations))


def columns_of(status_text: str, label: str) -> list[str]:
    """The values printed next to ``label`` in `status` output, one per column."""
    return value_of(status_text, label).split()


@pytest.mark.usefixtures("two_destinations")
def test_status_shows_each_destination_with_its_own_figures(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """With destinations a and b, `status` prints the stream once, then a column per
    destination (and default, which holds what no destination took) with its own figures."""
    seconds, _ = redis_client.time()
    redis_client.zadd(f"{key_prefix}:dest:a:due", {"x@example.com": (int(seconds) - 5) * 1000})
    redis_client.zadd(f"{key_prefix}:dest:b:leases", {"y@example.com": (int(seconds) + 60) * 1000})
    add_sync_letter(redis_client, f"{key_prefix}:dest:b")
    add_invalid_letter(redis_client, key_prefix)
    redis_client.hincrby(f"{key_prefix}:dest:a:stats", "events_ingested", 3)
    assert run(capsys, "enqueue", "--email", EMAIL)[0] == 0

    code, out, _ = run(capsys, "status")

    assert code == 0
    assert value_of(out, "backlog") == "1"
    assert columns_of(out, "Destination") == ["a", "b", "default"]
    assert columns_of(out, "due now") == ["1", "0", "0"]
    assert columns_of(out, "in flight") == ["0", "1", "0"]
    assert columns_of(out, "Dead letters") == ["0", "1", "1"]
    assert columns_of(out, "events_ingested") == ["3", "0", "0"]


@pytest.mark.usefixtures("two_destinations")
def test_status_json_with_destinations_nests_their_figures(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`status --json` keeps the shared figures at the top and puts each destination's own
    under `destinations`."""
    add_sync_letter(redis_client, f"{key_prefix}:dest:a")

    code, out, _ = run(capsys, "status", "--json")

    assert code == 0
    document = json.loads(out)
    assert document["stream_backlog"] == 0
    assert "dead_letters" not in document
    assert list(document["destinations"]) == ["a", "b", "default"]
    assert {
        name: figures["dead_letters"] for name, figures in document["destinations"].items()
    } == {
        "a": 1,
        "b": 0,
        "default": 0,
    }


@pytest.mark.usefixtures("two_destinations")
def test_dead_letters_list_and_show_read_the_destination_given(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`--destination NAME` lists and shows that destination's letters only; without it,
    default's (where events no destination takes are dead-lettered)."""
    in_b = add_sync_letter(redis_client, f"{key_prefix}:dest:b")
    in_default = add_invalid_letter(redis_client, key_prefix)

    _, in_b_listed, _ = run(capsys, "dead-letters", "list", "--destination", "b", "--json")
    _, in_default_listed, _ = run(capsys, "dead-letters", "list", "--json")
    _, in_a_listed, _ = run(capsys, "dead-letters", "list", "--destination", "a")
    code, shown, _ = run(capsys, "dead-letters", "show", in_b, "--destination", "b")
    _, shown_in_default, _ = run(capsys, "dead-letters", "show", in_b)  # ids may repeat

    assert [(letter["id"], letter["reason"]) for letter in json.loads(in_b_listed)] == [
        (in_b, "api_rejected")
    ]
    assert [letter["id"] for letter in json.loads(in_default_listed)] == [in_default]
    assert in_a_listed.strip() == "no dead letters for destination a"
    assert code == 0
    assert EMAIL in shown
    assert EMAIL not in shown_in_default


@pytest.mark.usefixtures("two_destinations")
def test_replay_sends_a_destinations_letter_back_to_it(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`replay --destination b` re-enqueues b's sync letter as events naming b, and leaves
    the other destinations' letters alone."""
    letter_id = add_sync_letter(redis_client, f"{key_prefix}:dest:b")
    kept = add_sync_letter(redis_client, f"{key_prefix}:dest:a")

    code, out, _ = run(capsys, "dead-letters", "replay", letter_id, "--destination", "b", "--json")

    assert code == 0
    assert json.loads(out) == {letter_id: "replayed"}
    written = [json.loads(raw) for raw in events(redis_client, key_prefix)]
    assert [event["destination"] for event in written] == ["b", "b"]
    assert [decode_event(raw).destination for raw in events(redis_client, key_prefix)] == [
        "b",
        "b",
    ]
    assert redis_client.xlen(f"{key_prefix}:dest:b:dead") == 0
    assert [
        entry_id.decode() for entry_id, _ in redis_client.xrange(f"{key_prefix}:dest:a:dead")
    ] == [kept]


@pytest.mark.usefixtures("two_destinations")
def test_purge_deletes_only_the_destinations_letters(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """`purge --destination a --yes` empties a's dead letters and no one else's."""
    add_sync_letter(redis_client, f"{key_prefix}:dest:a")
    add_sync_letter(redis_client, f"{key_prefix}:dest:b")

    code, out, _ = run(capsys, "dead-letters", "purge", "--destination", "a", "--yes", "--json")

    assert (code, json.loads(out)) == (0, {"purged": 1})
    assert redis_client.xlen(f"{key_prefix}:dest:a:dead") == 0
    assert redis_client.xlen(f"{key_prefix}:dest:b:dead") == 1


@pytest.mark.usefixtures("two_destinations")
@pytest.mark.parametrize("command", ["list", "show 1-1", "replay --all", "purge --yes"])
def test_unknown_destination_is_a_usage_error_naming_the_configured_ones(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str, command: str
) -> None:
    """An unknown --destination exits 2, names the configured destinations and touches nothing."""
    add_sync_letter(redis_client, f"{key_prefix}:dest:a")

    code, out, err = run(capsys, "dead-letters", *command.split(), "--destination", "c")

    assert (code, out) == (2, "")
    assert "'--destination'" in err
    assert "no destination named 'c'; the configured ones are: a, b, default" in err
    assert redis_client.xlen(f"{key_prefix}:dead") == redis_client.xlen(f"{key_prefix}:events") == 0
    assert redis_client.xlen(f"{key_prefix}:dest:a:dead") == 1


def test_without_a_destinations_file_only_default_is_known(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With one account, --destination default works and any other name is refused."""
    assert run(capsys, "dead-letters", "list", "--destination", "default")[0] == 0

    code, _, err = run(capsys, "dead-letters", "list", "--destination", "a")

    assert code == 2
    assert "the configured ones are: default" in err


# -- fake-activecampaign --------------------------------------------------------------------


def test_fake_activecampaign_gets_its_arguments_unchanged(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fake-activecampaign` hands every following argument, --help included, to the emulator."""
    received: list[list[str] | None] = []
    emulator = types.ModuleType("fake_activecampaign")
    emulator.main = lambda argv: received.append(argv) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_activecampaign", emulator)
    argv = ["--port", "0", "--rate-limit", "5", "--error-rate", "0.1", "--help"]

    code, _, _ = run(capsys, "fake-activecampaign", *argv)

    assert code == 7
    assert received == [argv]
