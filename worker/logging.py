"""Structured logs: one JSON object a line on stdout, for structlog and stdlib records alike.

``configure_logging()`` installs one handler on the root logger whose formatter renders
every record (ours, Celery's, kombu's) through the same processors. Two guarantees hold
for every line that handler writes, because they are applied to the finished text:

- each secret (the API token) is replaced by ``[REDACTED]``;
- unless ``log_pii``, every email-looking substring is masked to ``j***@example.com``.

Fields named ``email``/``emails`` are masked earlier, in the event dict, so the line-level
regex is only the last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import structlog

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "bind_task_context",
    "celery_setup_logging",
    "clear_task_context",
    "configure_logging",
    "get_logger",
    "mask_email",
    "redact",
]

REDACTED = "[REDACTED]"
_EMAIL_KEYS = frozenset({"email", "emails"})
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# A match starts either at a JSON escape (``\n``, ``\u001b``), which is kept whole so that
# masking never cuts one in half and breaks the line, or where a run of local-part
# characters begins: anchoring it there keeps the scan linear on long runs (base64, hex).
# ``*`` is not a local-part character, so a masked ``j***@example.com`` is left alone.
_EMAIL_IN_TEXT = re.compile(
    r"(?:(?P<escape>\\(?:u[0-9a-fA-F]{4}|[^u]))|(?<![\w.%+\-\\]))"
    r"(?P<local>[\w.%+\-]+)@(?P<domain>[\w\-]+(?:\.[\w\-]+)+)"
)


def mask_email(email: str) -> str:
    """Keep the first character of the local part and the domain: ``j***@example.com``.

    A string without ``@`` becomes ``***``. Never raises.
    """
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the stdlib logger ``name`` (the caller's module if None)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_task_context(task_id: str, task_name: str) -> None:
    """Add ``task_id`` and ``task`` to every line logged in this context until cleared."""
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task_name)


def clear_task_context() -> None:
    """Forget everything bound in this context, so nothing leaks into the next task's lines."""
    # All of it, not just the two task keys: whatever a task binds belongs to that task.
    structlog.contextvars.clear_contextvars()


class _LogSettings(Protocol):
    """The part of ``worker.settings.Settings`` that logging reads."""

    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> str: ...
    @property
    def log_pii(self) -> bool: ...
    def secrets(self) -> list[str]: ...


def celery_setup_logging(settings: _LogSettings) -> None:
    """Configure logging from ``Settings``; meant for Celery's ``setup_logging`` signal."""
    secrets = settings.secrets()
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        log_pii=settings.log_pii,
        secrets=secrets,
    )


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "json",
    log_pii: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib records to ``stream`` (default ``sys.stdout``).

    ``fmt`` is ``"json"`` (one object a line) or ``"console"``. ``level`` filters both
    kinds of record. Calling it again replaces the previous configuration.
    """
    level = level.upper()
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}, got {level!r}")
    if fmt not in {"json", "console"}:
        raise ValueError(f"fmt must be 'json' or 'console', got {fmt!r}")

    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )

    common: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.stdlib.add_logger_name,
    ]
    after: list[Processor] = []
    if fmt == "json":
        # ConsoleRenderer formats exc_info itself and warns if this has already run.
        after.append(structlog.processors.format_exc_info)
    if not log_pii:
        after.append(_mask_email_fields)

    formatter = _ScrubbingFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[*common, _foreign_stack_info, *after],
        secrets=secrets,
        mask_emails=not log_pii,
    )
    handler = _Handler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)
    handler.setLevel(level)

    root = logging.getLogger()
    # Only our own earlier handler goes: others on the root (pytest's capture, an APM's)
    # are not ours to remove, and removing ours is what makes a second call idempotent.
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *common,
            structlog.processors.StackInfoRenderer(),
            *after,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Tests and Celery's child processes reconfigure; cached loggers would keep the old chain.
        cache_logger_on_first_use=False,
    )


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so that a later call can replace it."""


class _ScrubbingFormatter(structlog.stdlib.ProcessorFormatter):
    """Scrubs the finished line, so no field, traceback or foreign record escapes it."""

    def __init__(
        self,
        *,
        secrets: Iterable[str],
        mask_emails: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._given = list(secrets)
        self._secrets = _secret_pattern(self._given)
        self._redacted_seen = len(_REDACTED_LATER)
        self._mask_emails = mask_emails

    def format(self, record: logging.LogRecord) -> str:
        try:
            line = super().format(record)
        except Exception as exc:
            # A broken record (say, wrong %-args) would otherwise reach Handler.handleError,
            # which prints the raw message and its args, token included, to stderr.
            line = _dumps(
                {
                    "event": "logging.format_failed",
                    "level": "error",
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "logger": record.name,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
        return self.scrub(line)

    def scrub(self, line: str) -> str:
        if self._redacted_seen != len(_REDACTED_LATER):  # a token was rotated in meanwhile
            self._redacted_seen = len(_REDACTED_LATER)
            self._secrets = _secret_pattern([*self._given, *_REDACTED_LATER])
        if self._secrets is not None:
            line = self._secrets.sub(REDACTED, line)
        if self._mask_emails:
            line = _EMAIL_IN_TEXT.sub(_mask_match, line)
        return line


_REDACTED_LATER: list[str] = []


def redact(secret: str) -> None:
    """Scrub ``secret`` from every line from now on, as ``configure_logging(secrets=...)``
    does: for a token read after logging was configured (a rotated token file)."""
    if secret and secret not in _REDACTED_LATER:
        _REDACTED_LATER.append(secret)


def _secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for every secret as it may appear in a line: raw, JSON- or repr-escaped."""
    variants: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for form in (secret, repr(secret)[1:-1]):
            variants.update(
                (form, json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1])
            )
    if not variants:
        return None
    # Longest first, so that a secret containing another is replaced whole.
    return re.compile("|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True)))


def _mask_match(match: re.Match[str]) -> str:
    return f"{match['escape'] or ''}{match['local'][:1]}***@{match['domain']}"


def _mask_email_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask values under ``email``/``emails`` keys, also in nested dicts and lists."""
    try:
        masked: EventDict = _mask_nested(event_dict)
    except RecursionError:
        # A dict that contains itself; the line-level regex still masks what gets rendered.
        return event_dict
    return masked


def _mask_nested(value: Any, *, under_email_key: bool = False) -> Any:
    if isinstance(value, Mapping):
        return {k: _mask_nested(v, under_email_key=k in _EMAIL_KEYS) for k, v in value.items()}
    if type(value) in (list, tuple):  # exactly: exc_info must stay a tuple, namedtuples intact
        return type(value)(_mask_nested(v, under_email_key=under_email_key) for v in value)
    if under_email_key and isinstance(value, set | frozenset):
        return [_mask_nested(v, under_email_key=True) for v in value]
    if under_email_key and isinstance(value, str):
        return mask_email(value)
    # Anything else is rendered as text and then caught by the line-level regex.
    return value


def _foreign_stack_info(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # A stdlib record already carries its formatted stack; StackInfoRenderer would
    # replace it with the formatter's own stack, which says nothing useful.
    stack = event_dict.pop("stack_info", None)
    if stack:
        event_dict["stack"] = stack
    return event_dict


def _dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that never fails: odd values become strings, NaN never reaches the line."""
    try:
        return json.dumps(obj, default=_to_str, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        # Non-string keys, cycles, NaN: keep the top-level keys and stringify their values.
        fallback = (
            {str(k): _to_str(v) for k, v in obj.items()}
            if isinstance(obj, Mapping)
            else _to_str(obj)
        )
        return json.dumps(fallback, ensure_ascii=False)


def _to_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
