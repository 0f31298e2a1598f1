"""worker.cli.importer and `contact-sync import`: files in, validated events on the stream."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from producers import ContactSyncProducer
from tests._redis_server import RedisServer, free_port
from worker.cli import main
from worker.cli.import_mapping import RowMapping
from worker.cli.import_source import Record, plan_import
from worker.cli.importer import ImportSummary, encode_record, run_import
from worker.cli.progress import Progress, progress_text
from worker.errors import EnqueueError, InvalidContactEvent

T0 = dt.datetime(2026, 11, 29, 13, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str) -> None:
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["import", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def events(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(entry[b"event"]) for _, entry in client.xrange(f"{prefix}:events")]


def emails(client: redis.Redis, prefix: str) -> list[str]:
    return [event["contact"]["email"] for event in events(client, prefix)]


def write_csv(path: Path, header: str, rows: Sequence[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def numbered_csv(path: Path, count: int) -> Path:
    return write_csv(
        path, "email,firstName", [f"user{n}@example.com,User {n}" for n in range(1, count + 1)]
    )


def test_csv_rows_are_mapped_and_enqueued(capsys, tmp_path, redis_client, key_prefix):
    """--map and --field turn CSV columns into attributes and custom fields, one event a row."""
    path = write_csv(
        tmp_path / "customers.csv",
        "email,first_name,last_name,mobile,birthday,plan",
        ["Jon@Example.com,John,Doe,7223224241,2008-01-20,gold", "ann@example.com,Ann,,,,"],
    )
    code, out, err = run(
        capsys,
        path,
        *("--map", "firstName=first_name", "--map", "lastName=last_name", "--map", "phone=mobile"),
        *("--field", "6=birthday", "--field", "07=plan", "--occurred-at", T0.isoformat()),
    )
    assert code == 0, err
    assert out.startswith("complete: 2 rows read, 2 enqueued, 0 invalid, 0 skipped")
    first, second = events(redis_client, key_prefix)
    assert first["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "phone": "7223224241",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}, {"field": "7", "value": "gold"}],
    }
    assert first["source"] == "import:customers.csv"
    assert dt.datetime.fromisoformat(first["occurred_at"]) == T0
    # Empty cells are absent ("unchanged"), never "".
    assert second["contact"] == {"email": "ann@example.com", "firstName": "Ann"}


def test_csv_columns_named_like_attributes_map_themselves(
    capsys, tmp_path, redis_client, key_prefix
):
    """Columns called email, firstName, lastName and phone need no flags; others are ignored, and said so."""
    path = write_csv(
        tmp_path / "people.csv",
        "phone,lastName,email,firstName,notes",
        ["555, Doe ,jon@example.com,John,vip", "  ,,ann@example.com,,"],
    )
    code, _, err = run(capsys, path, "--source", "crm-export")
    assert code == 0
    assert "ignoring columns notes" in err
    first, second = events(redis_client, key_prefix)
    assert first["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "lastName": " Doe ",
        "phone": "555",
    }
    assert first["source"] == "crm-export"
    assert second["contact"] == {"email": "ann@example.com"}  # a blank cell is empty too


def test_jsonl_api_shaped_contacts_pass_through(capsys, tmp_path, redis_client, key_prefix):
    """JSONL rows shaped like the API are the contact: "" is a real value, null means absent."""
    path = tmp_path / "contacts.jsonl"
    rows = [
        {
            "email": "jon@example.com",
            "firstName": "",
            "lastName": None,
            "fieldValues": [{"field": 6, "value": "x"}],
        },
        {"email": "ann@example.com", "phone": "123"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    code, _, err = run(capsys, path)
    assert code == 0, err
    assert [event["contact"] for event in events(redis_client, key_prefix)] == [
        {
            "email": "jon@example.com",
            "firstName": "",
            "fieldValues": [{"field": "6", "value": "x"}],
        },
        {"email": "ann@example.com", "phone": "123"},
    ]


def test_jsonl_with_mapping_flags_and_occurred_at_key(capsys, tmp_path, redis_client, key_prefix):
    """With mapping flags, JSONL keys are columns; --occurred-at-column gives each row its own time."""
    path = tmp_path / "export.ndjson"
    rows = [
        {
            "mail": "jon@example.com",
            "given": "John",
            "dob": "2008-01-20",
            "updated_at": "2025-01-02T03:04:05+01:00",
        },
        {"mail": "ann@example.com", "given": "", "updated_at": ""},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, _, err = run(
        capsys,
        path,
        *("--email-column", "mail", "--map", "firstName=given", "--field", "6=dob"),
        *("--occurred-at-column", "updated_at", "--occurred-at", T0.isoformat()),
    )
    assert code == 0, err
    first, second = events(redis_client, key_prefix)
    assert first["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}],
    }
    assert first["occurred_at"] == "2025-01-02T03:04:05+01:00"
    assert second["contact"] == {"email": "ann@example.com"}
    assert dt.datetime.fromisoformat(second["occurred_at"]) == T0  # empty cell: the default


FOOTPRINT_FLAGS = (
    *("--field", "%shirt_size%=shirt", "--field", "Company size=size", "--tags-column", "tags"),
    *("--tag", "trial=trial", "--list", "Newsletter=newsletter", "--list", "3=weekly"),
    *("--account-column", "company"),
)


def footprint_csv(path: Path) -> Path:
    """Three rows: every footprint column set, only flags set (to "remove"), nothing set."""
    return write_csv(
        path,
        "email,tags,trial,newsletter,weekly,company,shirt,size",
        [
            'jon@example.com,"vip, Beta,VIP,",yes,subscribed,0,Acme Inc,L,10-50',
            "ann@example.com,,No,Unsubscribed,TRUE,,,",
            "bob@example.com,,,,,,,",
        ],
    )


def test_csv_columns_map_to_fields_tags_lists_and_account(
    capsys, tmp_path, redis_client, key_prefix
):
    """--field by perstag and title, --tags-column, --tag, --list and --account-column fill the v2 event; empty cells change nothing."""
    path = footprint_csv(tmp_path / "crm.csv")
    code, out, err = run(capsys, path, *FOOTPRINT_FLAGS)
    assert code == 0, err
    assert "ignoring columns" not in err
    assert out.startswith("complete: 3 rows read, 3 enqueued, 0 invalid")
    jon, ann, bob = events(redis_client, key_prefix)
    assert jon["v"] == 2
    assert jon["contact"] == {
        "email": "jon@example.com",
        "fieldValues": [
            {"field": "%SHIRT_SIZE%", "value": "L"},
            {"field": "Company size", "value": "10-50"},
        ],
        "tags": {"vip": True, "Beta": True, "trial": True},  # "VIP" repeats "vip"
        "lists": {"Newsletter": "subscribed", "3": "unsubscribed"},
        "account": "Acme Inc",
    }
    assert ann["contact"] == {
        "email": "ann@example.com",
        "tags": {"trial": False},
        "lists": {"Newsletter": "unsubscribed", "3": "subscribed"},
    }
    assert bob["contact"] == {"email": "bob@example.com"}


def test_jsonl_keys_map_to_tags_lists_and_account(capsys, tmp_path, redis_client, key_prefix):
    """With mapping flags, JSONL cells may be JSON lists of tag names and JSON booleans; null and "" change nothing."""
    path = tmp_path / "export.jsonl"
    rows = [
        {
            "mail": "jon@example.com",
            "labels": ["trial", " vip "],
            "customer": True,
            "news": False,
            "org": "Acme Inc",
        },
        {"mail": "ann@example.com", "labels": "a;b", "customer": None, "news": 1, "org": ""},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, _, err = run(
        capsys,
        path,
        *("--email-column", "mail", "--tags-column", "labels", "--tags-separator", ";"),
        *("--tag", "customer=customer", "--list", "Newsletter=news", "--account-column", "org"),
    )
    assert code == 0, err
    jon, ann = (event["contact"] for event in events(redis_client, key_prefix))
    assert jon == {
        "email": "jon@example.com",
        "tags": {"trial": True, "vip": True, "customer": True},
        "lists": {"Newsletter": "unsubscribed"},
        "account": "Acme Inc",
    }
    assert ann == {
        "email": "ann@example.com",
        "tags": {"a": True, "b": True},
        "lists": {"Newsletter": "subscribed"},
    }


def test_jsonl_v2_shaped_contacts_pass_through(capsys, tmp_path, redis_client, key_prefix):
    """Without mapping flags a JSONL row is a v2 contact: tags, lists, account ("" unlinks) and fields by perstag or title."""
    path = tmp_path / "contacts.jsonl"
    rows = [
        {
            "email": "jon@example.com",
            "fieldValues": [
                {"field": "%shirt_size%", "value": "L"},
                {"field": "Plan", "value": "x"},
            ],
            "tags": {"trial": True, "churned": False},
            "lists": {"Newsletter": "subscribed", "3": "unsubscribed"},
            "account": "",
        }
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, _, err = run(capsys, path)
    assert code == 0, err
    (event,) = events(redis_client, key_prefix)
    assert event["contact"] == {
        "email": "jon@example.com",
        "fieldValues": [
            {"field": "%SHIRT_SIZE%", "value": "L"},
            {"field": "Plan", "value": "x"},
        ],
        "tags": {"trial": True, "churned": False},
        "lists": {"Newsletter": "subscribed", "3": "unsubscribed"},
        "account": "",
    }


def test_bad_tag_list_and_account_cells_are_reported_by_line(
    capsys, tmp_path, redis_client, key_prefix
):
    """Unreadable tag and list cells, a tag both added and removed, and names the schema refuses are invalid rows with their line."""
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"email,tags,trial,newsletter,company\n"
        b"good@example.com,vip,yes,subscribed,Acme\n"
        b"a@example.com,,maybe,,\n"
        b"b@example.com,,,perhaps,\n"
        b"c@example.com,trial,no,,\n"
        + b"d@example.com,"
        + b"x" * 256
        + b",,,\n"
        + b"e@example.com,,,,Ac\x01me\n"
    )
    errors = tmp_path / "errors.jsonl"
    code, out, err = run(
        capsys,
        path,
        *("--tags-column", "tags", "--tag", "trial=trial", "--list", "Newsletter=newsletter"),
        *("--account-column", "company", "--errors-file", errors),
    )
    assert code == 0
    assert "1 enqueued, 5 invalid" in out
    assert (
        "line 2: trial: Must be true or false (or yes/no, 1/0) to add or remove tag trial." in err
    )
    assert (
        "line 3: newsletter: Must be subscribed or unsubscribed (or true/false, yes/no, 1/0) "
        "for list Newsletter." in err
    )
    assert "line 4: trial: Removes tag trial, which column tags adds." in err
    assert f"line 5: tag {'x' * 256}: Tag name is longer than maximum length 255." in err
    assert "line 6: account: Account name must not contain control characters." in err
    assert emails(redis_client, key_prefix) == ["good@example.com"]
    reported = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [entry["line"] for entry in reported] == [2, 3, 4, 5, 6]
    assert reported[0]["errors"] == {
        "trial": ["Must be true or false (or yes/no, 1/0) to add or remove tag trial."]
    }


def test_a_tags_cell_that_is_not_names_is_an_error_for_its_column():
    """A JSONL tags cell that is neither text nor a list of strings is refused, keyed by its column."""
    mapping = RowMapping(tags_column="labels")
    for cell in ([1, 2], 7, {"a": True}):
        with pytest.raises(InvalidContactEvent) as caught:
            mapping.contact({"email": "a@example.com", "labels": cell})
        assert caught.value.messages == {
            "labels": ["Must be tag names: text separated by ',', or a list of strings."]
        }


def test_dry_run_shows_the_footprint_of_the_first_contact(capsys, tmp_path, monkeypatch):
    """--dry-run with tag, list and account flags shows them in the first contact and connects to nothing."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    path = footprint_csv(tmp_path / "crm.csv")
    code, out, err = run(capsys, path, *FOOTPRINT_FLAGS, "--dry-run")
    assert code == 0, err
    assert "3 would enqueue" in out
    first = json.loads(out.split("first contact: ", 1)[1].splitlines()[0])
    assert (first["tags"], first["account"]) == (
        {"vip": True, "Beta": True, "trial": True},
        "Acme Inc",
    )


def test_start_line_resumes_with_the_footprint_flags(capsys, tmp_path, redis_client, key_prefix):
    """--start-line with tag and list flags enqueues the later rows, mapped as in a whole run."""
    path = footprint_csv(tmp_path / "crm.csv")
    code, _, err = run(capsys, path, *FOOTPRINT_FLAGS, "--start-line", "2")
    assert code == 0, err
    assert [event["contact"] for event in events(redis_client, key_prefix)] == [
        {
            "email": "ann@example.com",
            "tags": {"trial": False},
            "lists": {"Newsletter": "unsubscribed", "3": "subscribed"},
        },
        {"email": "bob@example.com"},
    ]


def test_bad_rows_are_reported_by_line_while_good_rows_are_enqueued(
    capsys, tmp_path, redis_client, key_prefix
):
    """Invalid rows are printed with their line and per-field messages, written to --errors-file, and skipped."""
    path = write_csv(
        tmp_path / "mixed.csv",
        "email,firstName,birthday,updated_at",
        [
            "good1@example.com,A,,",
            "not-an-email,B,,",
            "",  # a blank line still counts as a line
            f"good2@example.com,{'x' * 300},,",
            "good3@example.com,C,,2025-01-01T00:00:00",
            "good4@example.com,D,,",
            "too,many,cells,here,!",
        ],
    )
    errors = tmp_path / "errors.jsonl"
    code, out, err = run(
        capsys,
        path,
        *("--field", "6=birthday", "--occurred-at-column", "updated_at"),
        *("--errors-file", errors, "--batch-size", "2"),
    )
    assert code == 0
    assert "4 invalid" in out
    assert "2 enqueued" in out
    assert "line 2: email: Not a valid email address." in err
    assert "line 4: firstName: Longer than maximum length 255." in err
    assert "line 5: updated_at: Needs a UTC offset" in err
    assert "line 7: _row: Has 5 cells; the header has 4." in err
    assert emails(redis_client, key_prefix) == ["good1@example.com", "good4@example.com"]
    reported = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [entry["line"] for entry in reported] == [2, 4, 5, 7]
    assert reported[0] == {
        "line": 2,
        "errors": {"email": ["Not a valid email address."]},
        "row": {"email": "not-an-email", "firstName": "B", "birthday": "", "updated_at": ""},
    }


def test_custom_field_errors_name_the_field_id():
    """A bad custom field value is reported as "field <id>", not by its index in fieldValues."""
    mapping = RowMapping(passthrough=True)
    record = Record(3, {"email": "a@example.com", "fieldValues": [{"field": "9", "value": 5}]})
    with pytest.raises(InvalidContactEvent) as caught:
        encode_record(record, mapping, occurred_at=T0, source=None)
    assert caught.value.messages == {
        "field 9": {
            "value": ["Value must be a string, a list of strings, a date or an aware datetime."]
        }
    }


def test_undecodable_bytes_fail_only_their_row(capsys, tmp_path, redis_client, key_prefix):
    """A row with bytes that are not UTF-8 is one invalid row, not an aborted import."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\xef\xbb\xbfemail,firstName\na@example.com,Ren\xe9\nb@example.com,Bob\n")
    code, _, err = run(capsys, path)
    assert code == 0
    assert "line 1: firstName: Not valid Unicode text" in err
    assert emails(redis_client, key_prefix) == ["b@example.com"]


def test_dry_run_validates_and_writes_nothing(capsys, tmp_path, monkeypatch, key_prefix):
    """--dry-run counts what would be enqueued and reports bad rows without touching Redis."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    path = write_csv(tmp_path / "c.csv", "email,firstName", ["a@example.com,A", "nope,B"])
    code, out, err = run(capsys, path, "--dry-run", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dry_run"] is True
    assert (summary["valid"], summary["enqueued"], summary["invalid"]) == (1, 0, 1)
    assert summary["first_contact"] == {"email": "a@example.com", "firstName": "A"}
    assert "line 2: email: Not a valid email address." in err


def test_start_line_skips_the_rows_before_it(capsys, tmp_path, redis_client, key_prefix):
    """--start-line N enqueues data lines N and later only."""
    path = numbered_csv(tmp_path / "c.csv", 10)
    code, out, _ = run(capsys, path, "--start-line", "7", "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["rows"], summary["skipped"], summary["enqueued"]) == (10, 6, 4)
    assert emails(redis_client, key_prefix) == [f"user{n}@example.com" for n in range(7, 11)]


def writer(client: redis.Redis, prefix: str) -> ContactSyncProducer:
    """The producer `contact-sync import` writes through."""
    return ContactSyncProducer(key_prefix=prefix, client=client)


class FlakyWriter:
    """Writes batches through a real writer, then fails from the ``fail_at``-th call on."""

    def __init__(self, client: redis.Redis, prefix: str, *, fail_at: int) -> None:
        self.real = writer(client, prefix)
        self.calls = 0
        self.fail_at = fail_at

    def write(self, texts: Sequence[str]) -> None:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise EnqueueError("could not enqueue a batch: ConnectionError: refused")
        self.real.write_encoded(texts)


def import_file(path: Path, write: Any, **options: Any) -> ImportSummary:
    plan = plan_import(path)
    return run_import(
        plan.records(), plan.mapping, write=write, occurred_at=T0, source=plan.source, **options
    )


def test_failed_batch_gives_a_resume_line_and_resuming_loses_nothing(
    tmp_path, redis_client, key_prefix
):
    """After an EnqueueError the resume line is the first row of the failed batch; resuming completes the file exactly once."""
    path = write_csv(
        tmp_path / "c.csv",
        "email,firstName",
        [f"user{n}@example.com,U" if n != 4 else "bad,U" for n in range(1, 24)],
    )
    flaky = FlakyWriter(redis_client, key_prefix, fail_at=3)
    summary = import_file(path, flaky.write, batch_size=5)
    # Batches: lines 1-6 (line 4 invalid), 7-11; the third (12-16) fails.
    assert summary.outcome == "failed"
    assert "ConnectionError" in (summary.error or "")
    assert summary.resume_line == 12
    assert summary.enqueued == 10
    assert len(emails(redis_client, key_prefix)) == 10

    resumed = import_file(
        path,
        writer(redis_client, key_prefix).write_encoded,
        batch_size=5,
        start_line=summary.resume_line,
    )
    assert resumed.outcome == "complete"
    assert resumed.resume_line is None
    expected = [f"user{n}@example.com" for n in range(1, 24) if n != 4]
    assert emails(redis_client, key_prefix) == expected


def test_a_batch_that_fails_after_its_first_chunk_resumes_at_its_first_unwritten_row(
    tmp_path, redis_client, key_prefix
):
    """When a 2,500-event batch fails with written=1,000, those count, and the resume line is the row of the 1,001st event."""
    rows = [f"user{n}@example.com" if n != 4 else "bad" for n in range(1, 2502)]
    valid = [row for row in rows if row != "bad"]
    path = write_csv(tmp_path / "c.csv", "email", rows)
    real = writer(redis_client, key_prefix)

    def first_chunk_only(texts: Sequence[str]) -> None:
        real.write_encoded(texts[:1000])
        raise EnqueueError("could not enqueue events 1,001 to 2,000 of 2,500", written=1000)

    summary = import_file(path, first_chunk_only, batch_size=2500)
    # Events 1-1,000 are lines 1-3 and 5-1,001 (line 4 is invalid): line 1,002 is next.
    assert (summary.outcome, summary.enqueued, summary.resume_line) == ("failed", 1000, 1002)
    assert emails(redis_client, key_prefix) == valid[:1000]

    resumed = import_file(path, real.write_encoded, batch_size=2500, start_line=1002)
    assert (resumed.outcome, resumed.enqueued) == ("complete", 1500)
    assert emails(redis_client, key_prefix) == valid


def test_ctrl_c_during_a_write_waits_for_the_batch(tmp_path, redis_client, key_prefix):
    """A SIGINT that arrives while a batch is written takes effect after it, so that batch counts as done."""
    path = numbered_csv(tmp_path / "c.csv", 20)
    real = writer(redis_client, key_prefix)

    def write(texts: Sequence[str]) -> None:
        real.write_encoded(texts)
        if len(emails(redis_client, key_prefix)) == 8:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal is delivered here, inside the write

    summary = import_file(path, write, batch_size=4)
    assert summary.outcome == "interrupted"
    assert (summary.enqueued, summary.resume_line) == (8, 9)
    assert len(emails(redis_client, key_prefix)) == 8


def test_ctrl_c_while_reading_resumes_at_the_unwritten_batch(tmp_path, redis_client, key_prefix):
    """An interrupt between batches resumes at the first row not yet written."""
    path = numbered_csv(tmp_path / "c.csv", 20)
    plan = plan_import(path)

    def records() -> Iterator[Record]:
        for record in plan.records():
            if record.line == 7:
                raise KeyboardInterrupt
            yield record

    write = writer(redis_client, key_prefix).write_encoded
    summary = run_import(
        records(), plan.mapping, write=write, occurred_at=T0, source=None, batch_size=4
    )
    assert (summary.outcome, summary.enqueued, summary.resume_line) == ("interrupted", 4, 5)


def test_cli_prints_the_resume_hint_and_exits_1_on_enqueue_error(
    capsys, tmp_path, monkeypatch, redis_client, key_prefix
):
    """`contact-sync import` names the line to resume from when Redis fails mid-way."""
    path = numbered_csv(tmp_path / "c.csv", 30)
    real_write = ContactSyncProducer.write_encoded
    calls = []

    def failing_third(self: ContactSyncProducer, texts: Sequence[str]) -> None:
        calls.append(len(texts))
        if len(calls) == 3:
            raise EnqueueError("could not enqueue events 1 to 10 of 10: ConnectionError: gone")
        real_write(self, texts)

    monkeypatch.setattr(ContactSyncProducer, "write_encoded", failing_third)
    code, out, err = run(capsys, path, "--batch-size", "10")
    assert code == 1
    assert out.startswith("failed: 30 rows read, 20 enqueued")
    assert "resume with --start-line 21" in err
    monkeypatch.setattr(ContactSyncProducer, "write_encoded", real_write)
    code, out, _ = run(capsys, path, "--batch-size", "10", "--start-line", "21")
    assert code == 0
    assert emails(redis_client, key_prefix) == [f"user{n}@example.com" for n in range(1, 31)]


def test_redis_stopping_mid_import_then_resuming_enqueues_every_row(capsys, tmp_path, monkeypatch):
    """With a real Redis stopped after two batches, the resume line plus a second run give every row once."""
    servers = [RedisServer(appendonly=True).start()]
    first = servers[0]
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", first.url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", "import-restart")
    path = numbered_csv(tmp_path / "c.csv", 50)
    real_write = ContactSyncProducer.write_encoded
    written: list[int] = []

    def stop_after_two(self: ContactSyncProducer, texts: Sequence[str]) -> None:
        if len(written) == 2:
            first.stop(keep_files=True)  # SIGTERM: Redis flushes its AOF before it exits
        real_write(self, texts)
        written.append(len(texts))

    try:
        monkeypatch.setattr(ContactSyncProducer, "write_encoded", stop_after_two)
        code, _, err = run(capsys, path, "--batch-size", "10")
        assert code == 1
        assert "resume with --start-line 21" in err

        servers.append(RedisServer(port=first.port, appendonly=True, workdir=first.workdir).start())
        monkeypatch.setattr(ContactSyncProducer, "write_encoded", real_write)
        code, _, err = run(capsys, path, "--batch-size", "10", "--start-line", "21")
        assert code == 0, err
        with redis.Redis.from_url(first.url) as client:
            assert emails(client, "import-restart") == [
                f"user{n}@example.com" for n in range(1, 51)
            ]
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.csv"], "no such file"),
        (["c.txt"], "cannot tell the format"),
        (["c.csv", "--map", "email=mail"], "unknown attribute email"),
        (["c.csv", "--map", "firstName"], "expected ATTRIBUTE=COLUMN"),
        (["c.csv", "--map", "phone=email", "--map", "phone=firstName"], "more than once"),
        (["c.csv", "--field", "%bad x%=firstName"], "--field: %bad x%: Perstag must be"),
        (["c.csv", "--field", "6=firstName", "--field", "06=email"], "6 and 06 are the same"),
        (["c.csv", "--field", "Size=firstName", "--field", "size=email"], "only once"),
        (["c.csv", "--tag", "trial"], "--tag: expected NAME=COLUMN"),
        (["c.csv", "--tag", "VIP=firstName", "--tag", "vip=email"], "same tag"),
        (["c.csv", "--tag", "trial=flag"], "no column 'flag'"),
        (["c.csv", "--list", "0=firstName"], "--list: 0: List id must be a positive integer."),
        (["c.csv", "--list", "News=firstName", "--list", "news=email"], "same list"),
        (["c.csv", "--list", "News=optin"], "no column 'optin'"),
        (["c.csv", "--tags-column", "labels"], "no column 'labels'"),
        (["c.csv", "--tags-separator", ";"], "only means something with --tags-column"),
        (["c.csv", "--tags-column", "email", "--tags-separator", ""], "must not be empty"),
        (["c.csv", "--account-column", "org"], "no column 'org'"),
        (["c.csv", "--map", "lastName=surname"], "no column 'surname'"),
        (["c.csv", "--occurred-at-column", "updated"], "no column 'updated'"),
        (["c.csv", "--source", "s" * 256], "longer than 255"),
    ],
)
def test_usage_errors_exit_2_before_anything_is_written(
    capsys, tmp_path, monkeypatch, redis_client, key_prefix, argv, message
):
    """Bad flags, unknown formats and missing columns stop the import at once with exit status 2."""
    numbered_csv(tmp_path / "c.csv", 3)
    (tmp_path / "c.txt").write_text("email\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_unreachable_redis_exits_1_before_reading(capsys, tmp_path, monkeypatch):
    """Without Redis the import fails at once with the usual message and exit status 1."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, _, err = run(capsys, numbered_csv(tmp_path / "c.csv", 3))
    assert code == 1
    assert "cannot reach Redis" in err


def test_progress_bar_on_a_terminal_shows_count_rate_and_eta():
    """On a TTY the bar is redrawn in place with the count, rows/s and the ETA."""
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, total=1000, tty=True, clock=lambda: now[0])
    now[0] = 2.0
    progress.update(250)
    assert stream.getvalue() == (
        "\r[######..................] 250/1,000 rows (25%), 125 rows/s, ETA 6.0s\x1b[K"
    )
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_without_a_terminal_is_a_plain_line_now_and_then():
    """Off a TTY, progress is one plain line per interval, without carriage returns."""
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, total=None, tty=False, interval_s=5.0, clock=lambda: now[0])
    for second in range(1, 12):
        now[0] = float(second)
        progress.update(second * 100)
    assert stream.getvalue() == "import: 500 rows, 100 rows/s\nimport: 1,000 rows, 100 rows/s\n"
    assert progress_text(10, 10, 1.0) == "10/10 rows (100%), 10 rows/s"


def test_count_rows_counts_data_lines(tmp_path):
    """The progress total is the number of data lines: CSV without its header, JSONL as is."""
    (tmp_path / "c.csv").write_text("email\na@example.com\n\nb@example.com")
    (tmp_path / "c.jsonl").write_text('{"email": "a@example.com"}\n{"email": "b@example.com"}\n')
    assert plan_import(tmp_path / "c.csv").count_rows() == 3
    assert plan_import(tmp_path / "c.jsonl").count_rows() == 2


@pytest.mark.slow
def test_fifty_thousand_rows_are_enqueued(capsys, tmp_path, redis_client, key_prefix):
    """A generated 50,000-row CSV imports fully: XLEN is 50,000 (prints the measured rate)."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,first_name,last_name,birthday\n")
        for n in range(50_000):
            handle.write(f"user{n}@example.com,First{n},Last{n},2000-01-{n % 28 + 1:02d}\n")
    assert plan_import(path).count_rows() == 50_000
    started = time.perf_counter()
    code, out, err = run(
        capsys,
        path,
        "--map",
        "firstName=first_name",
        "--map",
        "lastName=last_name",
        "--field",
        "6=birthday",
        "--json",
    )
    elapsed_s = time.perf_counter() - started
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["enqueued"], summary["invalid"]) == (50_000, 0)
    assert redis_client.xlen(f"{key_prefix}:events") == 50_000
    with capsys.disabled():
        print(f"\n50,000-row import: {elapsed_s:.2f}s, {50_000 / elapsed_s:,.0f} rows/s")


def test_destination_routes_every_row_and_a_malformed_one_stops_before_reading(
    capsys, tmp_path, redis_client, key_prefix
):
    """--destination NAME puts the name on every row's event (the default is left off the
    wire); a malformed name is a usage error before any row is read or written."""
    path = numbered_csv(tmp_path / "people.csv", 3)
    code, _, err = run(capsys, path, "--destination", "eu-2")
    assert code == 0, err
    assert [event.get("destination") for event in events(redis_client, key_prefix)] == ["eu-2"] * 3
    redis_client.delete(f"{key_prefix}:events")
    code, _, err = run(capsys, path)
    assert code == 0, err
    assert [event.get("destination") for event in events(redis_client, key_prefix)] == [None] * 3
    redis_client.delete(f"{key_prefix}:events")
    code, _, err = run(capsys, path, "--destination", "eu west")
    assert code == 2
    assert "Must be a destination name" in err
    assert events(redis_client, key_prefix) == []
