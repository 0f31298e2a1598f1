"""The one place that reads the environment.

``Settings.from_env()`` validates everything once, at start, and raises ``ConfigError``
naming the variable when a value is missing or malformed. Nothing else calls ``os.getenv``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from worker.destinations import (
    DEFAULT_DESTINATION,
    FILE_VARIABLE,
    Destination,
    load_destinations,
    parse_api_url,
)
from worker.errors import ConfigError
from worker.logging import get_logger, redact
from worker.redis_client import SentinelUrl, is_sentinel_url
from worker.secret import Secret, Token, TokenFile, check_token_text
from worker.timings import Timings

__all__ = ["Secret", "Settings", "UnknownDestination"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_LOG_FORMATS = {"json", "console"}


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Durations are in seconds unless the name says otherwise."""

    activecampaign_url: str | None = None
    api_token: Token | None = field(default=None, repr=False)
    redis_url: str = "redis://localhost:6379/0"
    broker_url: str | None = None
    key_prefix: str = "contact-sync"
    debounce_s: float = 2.0
    rate_limit: float = 5.0
    rate_margin_ms: int = 50
    http_timeout_s: float = 10.0
    # None derives the lease from the HTTP timeout; read the result from ``timings.lease_s``.
    lease_s: float | None = None
    pump_window_s: float = 5.0
    reclaim_idle_s: float = 15.0
    max_retry_age_s: float = 86400.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    config_error_backoff_s: float = 60.0
    confirmed_ttl_s: float = 90 * 86400.0
    log_level: str = "INFO"
    log_format: str = "json"
    log_pii: bool = False
    dead_letter_max_count: int = 100_000
    dead_letter_max_age_s: float = 30 * 86400.0
    # Backlog mode (worker/bulk.py): due emails above which bulk import drains them; 0 = off.
    bulk_min_backlog: int = 300
    bulk_rate_per_min: float = 100.0  # the account's multi-contact bulk_import requests/minute
    bulk_lease_s: float = 600.0  # how long a batch holds its emails between two polls
    bulk_pause_s: float = 60.0  # after "Rate limit exceeded.": the reference says a minute
    bulk_log_contacts: bool = True  # one contact.synced line per contact a batch confirms
    # Producers: replicas that must acknowledge an event (WAIT) before it counts as sent.
    producer_min_replicas: int = 0
    producer_wait_timeout_ms: int = 1000
    # Several accounts (worker/destinations.py): None means one, ``default``, from the
    # ACTIVECAMPAIGN_* variables. ``destination`` names the one these settings are for.
    destinations: Mapping[str, Destination] | None = field(default=None, repr=False, hash=False)
    destination: str = DEFAULT_DESTINATION
    _derived: dict[str, Settings] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def sync_chunk(self) -> int:
        """Emails per sync task: 1 up to 50 requests/s, then one more per 50/s, at most 20.

        At the account's 5/s a task per email costs nothing that matters and keeps every
        email's own task (Flower, time limits); at 1,000/s Celery's per-task cost is most of
        the work, and 20 emails a task cut it twentyfold.
        """
        return max(1, min(20, int(self.rate_limit // 50)))

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @cached_property
    def timings(self) -> Timings:
        """Leases, the pump's window and lock, time limits: derived and checked together."""
        return Timings.derive(
            http_timeout_s=self.http_timeout_s,
            lease_s=self.lease_s,
            pump_window_s=self.pump_window_s,
            reclaim_idle_s=self.reclaim_idle_s,
        )

    def require_api(self) -> Settings:
        """Raise ConfigError unless the worker-only settings (URL and token) are present."""
        if self.destinations:
            return self
        if not self.activecampaign_url:
            raise ConfigError(
                "ACTIVECAMPAIGN_URL", "is required by the worker (e.g. https://acct.api-us1.com)"
            )
        if self.api_token is None:
            raise ConfigError(
                "ACTIVECAMPAIGN_API_TOKEN",
                "is required by the worker (or set ACTIVECAMPAIGN_API_TOKEN_FILE)",
            )
        return self

    @property
    def destination_names(self) -> tuple[str, ...]:
        """Every destination, in the file's order (just ``default`` without a file)."""
        return tuple(self.destinations) if self.destinations else (DEFAULT_DESTINATION,)

    def for_destination(self, name: str) -> Settings:
        """These settings with one destination's URL, token and rate limit; the same object
        for the same name every time (the per-process runtimes are cached by it)."""
        derived = self._derived.get(name)
        if derived is not None:
            return derived
        if not self.destinations:
            if name != DEFAULT_DESTINATION:
                raise UnknownDestination(name)
            derived = self if self.destination == name else self.replace(destination=name)
        else:
            if name not in self.destinations:
                raise UnknownDestination(name)
            account = self.destinations[name]
            derived = self.replace(
                activecampaign_url=account.url,
                api_token=account.token,
                rate_limit=account.rate_limit,
                destination=name,
            )
        self._derived[name] = derived
        return derived

    def secrets(self) -> list[str]:
        """Every token value these settings hold or held (the logs redact them all)."""
        tokens = [account.token for account in (self.destinations or {}).values()]
        if self.api_token is not None:
            tokens.append(self.api_token)
        values: list[str] = []
        for token in tokens:
            values += token.seen() if isinstance(token, TokenFile) else [token.reveal()]
        return values

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable. The API settings are checked by require_api()."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        allow_insecure = reader.boolean("CONTACT_SYNC_ALLOW_INSECURE_URL", False)
        lease = reader.number("CONTACT_SYNC_LEASE_S", 0, minimum=0)
        rate_limit = reader.number("CONTACT_SYNC_RATE_LIMIT", cls.rate_limit, minimum=0.01)
        destinations_file = reader._raw(FILE_VARIABLE)
        destinations = None
        if destinations_file is not None:
            for name in (
                "ACTIVECAMPAIGN_URL",
                "ACTIVECAMPAIGN_API_TOKEN",
                "ACTIVECAMPAIGN_API_TOKEN_FILE",
            ):
                if reader._raw(name) is not None:
                    raise ConfigError(
                        FILE_VARIABLE,
                        f"set either it or {name}, not both (the file names every account)",
                    )
            destinations = load_destinations(
                destinations_file,
                allow_insecure=allow_insecure,
                default_rate_limit=rate_limit,
                on_new_token=redact,
                on_unreadable_token=_log_unreadable_token,
            )
        settings = cls(
            activecampaign_url=reader.api_url("ACTIVECAMPAIGN_URL", allow_insecure=allow_insecure),
            api_token=reader.token(),
            destinations=destinations,
            redis_url=reader.redis_url("CONTACT_SYNC_REDIS_URL", cls.redis_url),
            broker_url=reader.broker_url("CELERY_BROKER_URL"),
            key_prefix=reader.key_prefix("CONTACT_SYNC_KEY_PREFIX", cls.key_prefix),
            debounce_s=reader.number("CONTACT_SYNC_DEBOUNCE_S", cls.debounce_s, minimum=0),
            rate_limit=rate_limit,
            rate_margin_ms=int(
                reader.number("CONTACT_SYNC_RATE_MARGIN_MS", cls.rate_margin_ms, minimum=0)
            ),
            http_timeout_s=reader.number(
                "CONTACT_SYNC_HTTP_TIMEOUT_S", cls.http_timeout_s, minimum=0.1
            ),
            lease_s=lease or None,
            pump_window_s=reader.number(
                "CONTACT_SYNC_PUMP_WINDOW_S", cls.pump_window_s, minimum=0.1
            ),
            reclaim_idle_s=reader.number(
                "CONTACT_SYNC_RECLAIM_IDLE_S", cls.reclaim_idle_s, minimum=0.1
            ),
            max_retry_age_s=reader.number(
                "CONTACT_SYNC_MAX_RETRY_AGE_S", cls.max_retry_age_s, minimum=0
            ),
            backoff_base_s=reader.number(
                "CONTACT_SYNC_BACKOFF_BASE_S", cls.backoff_base_s, minimum=0.01
            ),
            backoff_cap_s=reader.number(
                "CONTACT_SYNC_BACKOFF_CAP_S", cls.backoff_cap_s, minimum=0.01
            ),
            config_error_backoff_s=reader.number(
                "CONTACT_SYNC_CONFIG_ERROR_BACKOFF_S", cls.config_error_backoff_s, minimum=0.01
            ),
            confirmed_ttl_s=reader.number(
                "CONTACT_SYNC_CONFIRMED_TTL_S", cls.confirmed_ttl_s, minimum=0
            ),
            log_level=reader.choice(
                "CONTACT_SYNC_LOG_LEVEL", cls.log_level, _LOG_LEVELS, upper=True
            ),
            log_format=reader.choice("CONTACT_SYNC_LOG_FORMAT", cls.log_format, _LOG_FORMATS),
            log_pii=reader.boolean("CONTACT_SYNC_LOG_PII", cls.log_pii),
            dead_letter_max_count=int(
                reader.number(
                    "CONTACT_SYNC_DEAD_LETTER_MAX_COUNT", cls.dead_letter_max_count, minimum=1
                )
            ),
            dead_letter_max_age_s=reader.number(
                "CONTACT_SYNC_DEAD_LETTER_MAX_AGE_S", cls.dead_letter_max_age_s, minimum=1
            ),
            bulk_min_backlog=int(
                reader.number("CONTACT_SYNC_BULK_MIN_BACKLOG", cls.bulk_min_backlog, minimum=0)
            ),
            bulk_rate_per_min=reader.number(
                "CONTACT_SYNC_BULK_RATE_PER_MIN", cls.bulk_rate_per_min, minimum=1
            ),
            bulk_lease_s=reader.number("CONTACT_SYNC_BULK_LEASE_S", cls.bulk_lease_s, minimum=10),
            bulk_pause_s=reader.number("CONTACT_SYNC_BULK_PAUSE_S", cls.bulk_pause_s, minimum=1),
            bulk_log_contacts=reader.boolean(
                "CONTACT_SYNC_BULK_LOG_CONTACTS", cls.bulk_log_contacts
            ),
            producer_min_replicas=int(
                reader.number(
                    "CONTACT_SYNC_PRODUCER_MIN_REPLICAS", cls.producer_min_replicas, minimum=0
                )
            ),
            producer_wait_timeout_ms=int(
                reader.number(
                    "CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS", cls.producer_wait_timeout_ms, minimum=1
                )
            ),
        )
        settings.timings  # noqa: B018 -- validates the timings' invariants at start
        if settings.bulk_lease_s <= settings.timings.lease_s:
            # A batch's emails must stay leased until another worker can take over its step.
            raise ConfigError(
                "CONTACT_SYNC_BULK_LEASE_S",
                f"must be longer than CONTACT_SYNC_LEASE_S ({settings.timings.lease_s:g} s), "
                f"got {settings.bulk_lease_s:g}",
            )
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return float(default)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {raw!r}") from None
        if value != value or value < minimum:  # NaN never compares, so check it by itself
            raise ConfigError(name, f"must be a number >= {minimum:g}, got {raw!r}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: set[str], *, upper: bool = False) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(sorted(allowed))}, got {raw!r}")
        return value

    def key_prefix(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if any(ch.isspace() for ch in raw):
            raise ConfigError(name, "must not contain white space")
        return raw

    def redis_url(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if is_sentinel_url(raw):
            return self._sentinel_url(name, raw)
        if urlsplit(raw).scheme not in {"redis", "rediss", "unix"}:
            raise ConfigError(name, "must be a redis://, rediss://, unix:// or sentinel:// URL")
        return raw

    def broker_url(self, name: str) -> str | None:
        """Passed to Celery as given, except a sentinel:// URL, which must be in our form."""
        raw = self._raw(name)
        if raw is not None and is_sentinel_url(raw):
            return self._sentinel_url(name, raw)
        return raw

    @staticmethod
    def _sentinel_url(name: str, raw: str) -> str:
        try:
            SentinelUrl.parse(raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
        return raw

    def api_url(self, name: str, *, allow_insecure: bool) -> str | None:
        raw = self._raw(name)
        return None if raw is None else parse_api_url(name, raw, allow_insecure=allow_insecure)

    def token(self) -> Token | None:
        direct = self._raw("ACTIVECAMPAIGN_API_TOKEN")
        path = self._raw("ACTIVECAMPAIGN_API_TOKEN_FILE")
        if direct is not None and path is not None:
            raise ConfigError(
                "ACTIVECAMPAIGN_API_TOKEN_FILE",
                "set either it or ACTIVECAMPAIGN_API_TOKEN, not both",
            )
        if path is not None:
            # Read again when the file changes: a rotated token needs no restart.
            return TokenFile(
                path,
                variable="ACTIVECAMPAIGN_API_TOKEN_FILE",
                on_new=redact,
                on_unreadable=lambda problem: _log_unreadable_token(
                    "ACTIVECAMPAIGN_API_TOKEN_FILE", problem
                ),
            )
        if direct is None:
            return None
        return Secret(check_token_text("ACTIVECAMPAIGN_API_TOKEN", direct))


def _log_unreadable_token(variable: str, problem: str) -> None:
    """A rotated token file that cannot be used: the previous token stays in use."""
    get_logger("contact_sync.settings").warning(
        "token_file.unreadable", variable=variable, problem=problem, kept="the previous token"
    )


class UnknownDestination(KeyError):
    """A destination these settings do not define (reason ``unknown_destination``)."""
