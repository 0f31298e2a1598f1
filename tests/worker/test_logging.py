"""worker.logging: JSON lines for structlog and stdlib records, token scrubbing, email masking."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

import worker.logging as worker_logging
from worker.logging import (
    bind_task_context,
    celery_setup_logging,
    clear_task_context,
    configure_logging,
    get_logger,
    mask_email,
)
from worker.settings import Secret, Settings

TOKEN = "ac-token-6f1c9e2d4b7a"
EMAIL = "jondoe@example.com"
MASKED = "j***@example.com"
REQUIRED_KEYS = {"event", "level", "timestamp", "logger"}


@pytest.fixture(autouse=True)
def _restore_stdlib_logging() -> Iterator[None]:
    """Leave the root logger's handlers and level, and the context, as the test found them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def configure(stream: io.StringIO) -> Callable[..., None]:
    """configure_logging writing to the test's stream, with the token as the secret."""

    def _configure(**kwargs: Any) -> None:
        kwargs.setdefault("secrets", [TOKEN])
        configure_logging(stream=stream, **kwargs)

    return _configure


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def configured_chain() -> list[Any]:
    """The configured structlog processors, without the final hand-over to the stdlib."""
    return list(structlog.get_config()["processors"])[:-1]


def raise_and_log_exception(message: str) -> None:
    try:
        raise RuntimeError(message)
    except RuntimeError:
        get_logger("test").exception("request.failed")


# --- shape of every line --------------------------------------------------------------


def test_every_line_is_json_with_event_level_timestamp(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """Each structlog call writes one JSON object with event, level, UTC timestamp, logger."""
    configure()
    log = get_logger("worker.tasks")
    log.info("contact.synced", contact_id=7)
    log.warning("contact.sync_retry", attempt=2)

    lines = json_lines(stream)
    assert [line["event"] for line in lines] == ["contact.synced", "contact.sync_retry"]
    for line in lines:
        assert line.keys() >= REQUIRED_KEYS
        assert line["logger"] == "worker.tasks"
        assert datetime.fromisoformat(line["timestamp"]).utcoffset() == timedelta(0)
    assert [line["level"] for line in lines] == ["info", "warning"]
    assert lines[0]["contact_id"] == 7


def test_stdlib_record_renders_as_the_same_json(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """A record from the stdlib logging module (Celery's) becomes a JSON line with the same keys."""
    configure()
    logging.getLogger("celery.worker").info("hi %s", "x")

    [line] = json_lines(stream)
    assert line.keys() == REQUIRED_KEYS
    assert line["event"] == "hi x"
    assert line["level"] == "info"
    assert line["logger"] == "celery.worker"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() == timedelta(0)


def test_exceptions_become_a_string_field(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """log.exception and a stdlib exception record both carry the traceback as `exception` text."""
    configure()
    raise_and_log_exception("boom")
    try:
        raise ValueError("kaput")
    except ValueError:
        logging.getLogger("kombu").exception("connection lost")

    structlog_line, stdlib_line = json_lines(stream)
    assert "RuntimeError: boom" in structlog_line["exception"]
    assert "ValueError: kaput" in stdlib_line["exception"]
    assert structlog_line["level"] == stdlib_line["level"] == "error"


def test_exception_field_in_the_event_dict(configure: Callable[..., None]) -> None:
    """The processor chain replaces exc_info with a plain `exception` string."""
    configure()
    with capture_logs(processors=configured_chain()) as logs:
        raise_and_log_exception("boom")

    [entry] = logs
    assert "exc_info" not in entry
    assert isinstance(entry["exception"], str)
    assert "RuntimeError: boom" in entry["exception"]


def test_odd_values_never_break_the_json(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """Objects json cannot encode, NaN and non-string keys still give one valid JSON line."""
    configure()

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    log = get_logger("test")
    log.info("odd.object", value=object(), unprintable=Unprintable(), raw=b"\x00")
    log.info("odd.numbers", nan=float("nan"))
    log.info("odd.keys", mapping={(1, 2): "tuple key"})

    lines = [
        json.loads(line, parse_constant=pytest.fail) for line in stream.getvalue().splitlines()
    ]
    assert [line["event"] for line in lines] == ["odd.object", "odd.numbers", "odd.keys"]
    assert lines[0]["unprintable"] == "<unprintable Unprintable>"


def test_broken_stdlib_record_is_logged_without_its_args(
    configure: Callable[..., None], stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record whose %-args do not fit becomes a JSON error line; its args reach no output."""
    configure()
    record = logging.makeLogRecord(
        {"name": "third.party", "msg": "%s and %s", "args": (TOKEN,), "levelname": "INFO"}
    )
    # Straight to our handler: pytest's own capture handler would raise on this record.
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, worker_logging._Handler)]
    handler.handle(record)

    [line] = json_lines(stream)
    assert line["event"] == "logging.format_failed"
    assert line["logger"] == "third.party"
    captured = capsys.readouterr()
    assert TOKEN not in stream.getvalue() + captured.out + captured.err


# --- the API token --------------------------------------------------------------------


def _in_field() -> None:
    get_logger("test").info("request.sent", headers={"Api-Token": TOKEN})


def _in_nested_dicts() -> None:
    get_logger("test").info("request.sent", request={"meta": {"auth": [TOKEN]}})


def _in_event_text() -> None:
    get_logger("test").info(f"calling with token {TOKEN}")


def _in_exception_message() -> None:
    raise_and_log_exception(f"401 for token {TOKEN}")


def _in_stdlib_args() -> None:
    logging.getLogger("urllib3.connectionpool").info("headers %r", {"Api-Token": TOKEN})


def _in_stdlib_exception() -> None:
    try:
        raise ConnectionError(f"refused with {TOKEN}")
    except ConnectionError:
        logging.getLogger("kombu").exception("retrying")


@pytest.mark.parametrize(
    "emit",
    [
        _in_field,
        _in_nested_dicts,
        _in_event_text,
        _in_exception_message,
        _in_stdlib_args,
        _in_stdlib_exception,
    ],
)
def test_token_never_appears(
    configure: Callable[..., None], stream: io.StringIO, emit: Callable[[], None]
) -> None:
    """Wherever the token hides in a record, the written line shows [REDACTED] instead."""
    configure()
    emit()

    output = stream.getvalue()
    assert TOKEN not in output
    assert "[REDACTED]" in output
    json_lines(stream)  # scrubbing kept the line valid JSON


def test_token_with_json_special_characters_is_redacted(stream: io.StringIO) -> None:
    """A secret that JSON or repr() escapes is redacted in its escaped form too."""
    secret = 'to"k\\en'
    configure_logging(stream=stream, secrets=[secret])
    get_logger("test").info("request.sent", token=secret)
    logging.getLogger("lib").info("args %r", [secret])

    output = stream.getvalue()
    assert "to\\" not in output  # the start of the escaped forms: `to\"k\\en`, `to"k\\\\en`
    assert [line["token"] for line in json_lines(stream)[:1]] == ["[REDACTED]"]
    assert json_lines(stream)[1]["event"] == "args ['[REDACTED]']"


def test_token_is_redacted_in_console_format(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """Scrubbing wraps the console renderer as well."""
    configure(fmt="console")
    raise_and_log_exception(f"401 for token {TOKEN}")
    logging.getLogger("kombu").warning("token=%s", TOKEN)

    assert TOKEN not in stream.getvalue()
    assert stream.getvalue().count("[REDACTED]") >= 2


def test_empty_secrets_are_ignored(stream: io.StringIO) -> None:
    """An empty secret redacts nothing instead of redacting between every character."""
    configure_logging(stream=stream, secrets=["", ""])
    get_logger("test").info("plain.text")

    assert json_lines(stream)[0]["event"] == "plain.text"
    assert "[REDACTED]" not in stream.getvalue()


# --- emails ---------------------------------------------------------------------------


def test_email_fields_are_masked_in_the_event_dict(configure: Callable[..., None]) -> None:
    """Values under `email`/`emails` keys are masked by the processor chain, also when nested."""
    configure()
    with capture_logs(processors=configured_chain()) as logs:
        get_logger("test").info(
            "contact.synced",
            email=EMAIL,
            emails=[EMAIL, "ann@example.org"],
            contact={"email": EMAIL, "first_name": "Jon"},
        )

    [entry] = logs
    assert entry["email"] == MASKED
    assert entry["emails"] == [MASKED, "a***@example.org"]
    assert entry["contact"] == {"email": MASKED, "first_name": "Jon"}


def test_emails_are_masked_everywhere_in_the_line(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """By default no whole email survives: not in fields, free text, exceptions or stdlib args."""
    configure()
    log = get_logger("test")
    log.info("contact.synced", email=EMAIL)
    log.info(f"syncing {EMAIL}\nnext line")
    raise_and_log_exception(f"duplicate contact {EMAIL}")
    logging.getLogger("celery.worker").warning("task for %s failed", EMAIL)

    output = stream.getvalue()
    assert "jondoe" not in output
    lines = json_lines(stream)
    assert lines[0]["email"] == MASKED
    assert lines[1]["event"] == f"syncing {MASKED}\nnext line"
    assert f"duplicate contact {MASKED}" in lines[2]["exception"]
    assert lines[3]["event"] == f"task for {MASKED} failed"


def test_an_email_after_a_json_escape_keeps_the_line_valid(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """Masking text right after an escape such as \\u001b does not corrupt the JSON."""
    configure()
    get_logger("test").info("raw.text", note=f"\x1b{EMAIL}\t{EMAIL}")

    assert json_lines(stream)[0]["note"] == f"\x1b{MASKED}\t{MASKED}"


def test_log_pii_keeps_emails_whole(configure: Callable[..., None], stream: io.StringIO) -> None:
    """With log_pii=True emails are written as they are, in fields, text and exceptions."""
    configure(log_pii=True)
    log = get_logger("test")
    log.info("contact.synced", email=EMAIL)
    log.info(f"syncing {EMAIL}")
    raise_and_log_exception(f"duplicate contact {EMAIL}")

    lines = json_lines(stream)
    assert lines[0]["email"] == EMAIL
    assert lines[1]["event"] == f"syncing {EMAIL}"
    assert EMAIL in lines[2]["exception"]
    assert "***" not in stream.getvalue()


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("jondoe@example.com", "j***@example.com"),
        ("j@example.com", "j***@example.com"),
        ("@example.com", "***@example.com"),
        ("jon@", "j***@"),
        ("a@b@example.com", "a***@example.com"),
        ("not-an-email", "***"),
        ("", "***"),
    ],
)
def test_mask_email_examples(email: str, masked: str) -> None:
    """mask_email keeps the first character and the domain, or gives *** without an @."""
    assert mask_email(email) == masked


@given(st.text())
def test_mask_email_never_raises(text: str) -> None:
    """mask_email returns a string for any input."""
    assert isinstance(mask_email(text), str)


@given(
    local=st.text(alphabet=st.characters(exclude_characters="@*"), min_size=2),
    domain=st.text(alphabet=st.characters(exclude_characters="@")),
)
def test_mask_email_hides_local_parts_longer_than_one_character(local: str, domain: str) -> None:
    """Only the first character of a local part survives; the domain is kept."""
    masked = mask_email(f"{local}@{domain}")

    assert masked == f"{local[0]}***@{domain}"
    assert local not in masked.rpartition("@")[0]


# --- formats, levels, reconfiguration -------------------------------------------------


def test_console_format_writes_human_lines(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """fmt='console' writes readable key=value lines, not JSON, with the same masking."""
    configure(fmt="console")
    get_logger("test").info("contact.synced", email=EMAIL, contact_id=7)
    logging.getLogger("celery.worker").info("hi %s", "x")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert "contact.synced" in lines[0]
    assert "contact_id=7" in lines[0]
    assert MASKED in lines[0]
    assert "hi x" in lines[1]
    assert "celery.worker" in lines[1]
    assert "\x1b[" not in stream.getvalue()  # no colour codes


def test_level_filters_structlog_and_stdlib_records(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """Below the configured level nothing is written, whichever API logged it."""
    configure(level="WARNING")
    chatty = logging.getLogger("chatty.library")
    chatty.setLevel(logging.DEBUG)  # a library's own level must not open the gate
    try:
        log = get_logger("test")
        log.debug("structlog.debug")
        log.info("structlog.info")
        log.warning("structlog.warning")
        logging.getLogger("celery.worker").info("stdlib.info")
        chatty.debug("stdlib.debug")
        logging.getLogger("celery.worker").error("stdlib.error")
    finally:
        chatty.setLevel(logging.NOTSET)

    events = [line["event"] for line in json_lines(stream)]
    assert events == ["structlog.warning", "stdlib.error"]


def test_debug_level_lets_debug_through(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """level='debug' (any case) writes debug lines."""
    configure(level="debug")
    get_logger("test").debug("structlog.debug")
    logging.getLogger("kombu").debug("stdlib.debug")

    assert [line["event"] for line in json_lines(stream)] == ["structlog.debug", "stdlib.debug"]


def test_unknown_level_or_format_is_refused(stream: io.StringIO) -> None:
    """A typo in level or fmt fails loudly instead of logging at a surprising level."""
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="VERBOSE", stream=stream)
    with pytest.raises(ValueError, match="fmt"):
        configure_logging(fmt="xml", stream=stream)


def test_configuring_twice_writes_each_line_once(stream: io.StringIO) -> None:
    """A second call replaces the first handler: no duplicate lines, old stream untouched."""
    first = io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=stream)
    configure_logging(stream=stream)

    get_logger("test").info("once")
    logging.getLogger("celery.worker").info("once too")

    assert [line["event"] for line in json_lines(stream)] == ["once", "once too"]
    assert first.getvalue() == ""


def test_reconfiguring_applies_the_new_settings(stream: io.StringIO) -> None:
    """Loggers created before a reconfiguration follow the new level, format and secrets."""
    log = get_logger("test")
    configure_logging(stream=stream, level="ERROR")
    log.info("dropped")
    configure_logging(stream=stream, level="INFO", secrets=[TOKEN])
    log.info("kept", token=TOKEN)

    [line] = json_lines(stream)
    assert line == line | {"event": "kept", "token": "[REDACTED]"}


# --- task context ---------------------------------------------------------------------


def test_task_context_is_on_every_line_until_cleared(
    configure: Callable[..., None], stream: io.StringIO
) -> None:
    """Bound task_id and task appear on structlog and stdlib lines; clearing removes them."""
    configure()
    bind_task_context("a1b2", "worker.tasks.sync_contact")
    get_logger("test").info("contact.synced")
    logging.getLogger("celery.app.trace").info("Task succeeded")
    clear_task_context()
    get_logger("test").info("idle")

    inside_structlog, inside_stdlib, after = json_lines(stream)
    for line in (inside_structlog, inside_stdlib):
        assert line["task_id"] == "a1b2"
        assert line["task"] == "worker.tasks.sync_contact"
    assert "task_id" not in after
    assert "task" not in after


def test_task_context_in_the_event_dict(configure: Callable[..., None]) -> None:
    """The chain merges the bound task context into each event dict."""
    configure()
    with capture_logs(processors=configured_chain()) as logs:
        bind_task_context("a1b2", "worker.tasks.sync_contact")
        get_logger("test").info("contact.synced")
        clear_task_context()
        get_logger("test").info("idle")

    assert logs[0]["task_id"] == "a1b2"
    assert logs[0]["task"] == "worker.tasks.sync_contact"
    assert "task_id" not in logs[1]


# --- Celery entry point and public surface --------------------------------------------


def test_celery_setup_logging_reads_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """Level, format and the token as a secret come from Settings; output goes to stdout."""
    settings = Settings(api_token=Secret(TOKEN), log_level="WARNING", log_format="json")
    celery_setup_logging(settings)
    get_logger("test").info("dropped")
    get_logger("test").warning("auth.failed", token=TOKEN)

    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["event"] == "auth.failed"
    assert line["token"] == "[REDACTED]"


def test_celery_setup_logging_without_token(capsys: pytest.CaptureFixture[str]) -> None:
    """Settings without a token (and log_pii on) configure logging without secrets."""
    celery_setup_logging(Settings(log_pii=True, log_format="console"))
    get_logger("test").info("contact.synced", email=EMAIL)

    out = capsys.readouterr().out
    assert EMAIL in out
    assert "[REDACTED]" not in out


def test_all_lists_the_public_surface() -> None:
    """Every name in __all__ exists and is a public function of the module."""
    assert sorted(worker_logging.__all__) == [
        "bind_task_context",
        "celery_setup_logging",
        "clear_task_context",
        "configure_logging",
        "get_logger",
        "mask_email",
        "redact",
    ]
    for name in worker_logging.__all__:
        assert callable(getattr(worker_logging, name))
