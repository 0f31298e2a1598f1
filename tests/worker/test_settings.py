"""worker.settings: defaults, parsing, validation messages and keeping the token secret."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import Secret, Settings

TOKEN = "tok-0123456789abcdef"


def load(**env: str) -> Settings:
    return Settings.from_env(environ=env)


def test_defaults_match_the_documented_table() -> None:
    """An empty environment gives the documented defaults and no API settings."""
    settings = load()
    assert settings == Settings()
    assert settings.activecampaign_url is None
    assert settings.api_token is None
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.celery_broker_url == "redis://localhost:6379/0"
    assert settings.key_prefix == "contact-sync"
    assert settings.debounce_s == 2.0
    assert settings.rate_limit == 5.0
    assert settings.http_timeout_s == 10.0
    assert settings.max_retry_age_s == 86400.0
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.log_pii is False


def test_every_variable_is_parsed() -> None:
    """Each documented and tuning variable lands in its typed field."""
    settings = load(
        ACTIVECAMPAIGN_URL="https://acct.api-us1.com/",
        ACTIVECAMPAIGN_API_TOKEN=f"  {TOKEN}  ",
        CONTACT_SYNC_REDIS_URL="redis://cache.internal:6380/2",
        CELERY_BROKER_URL="redis://broker.internal:6381/0",
        CONTACT_SYNC_KEY_PREFIX="{cs}",
        CONTACT_SYNC_DEBOUNCE_S="0.5",
        CONTACT_SYNC_RATE_LIMIT="2.5",
        CONTACT_SYNC_RATE_MARGIN_MS="75",
        CONTACT_SYNC_HTTP_TIMEOUT_S="4",
        CONTACT_SYNC_MAX_RETRY_AGE_S="3600",
        CONTACT_SYNC_BACKOFF_BASE_S="0.25",
        CONTACT_SYNC_BACKOFF_CAP_S="30",
        CONTACT_SYNC_CONFIG_ERROR_BACKOFF_S="120",
        CONTACT_SYNC_CONFIRMED_TTL_S="0",
        CONTACT_SYNC_LOG_LEVEL="debug",
        CONTACT_SYNC_LOG_FORMAT="Console",
        CONTACT_SYNC_LOG_PII="yes",
    )
    assert settings.activecampaign_url == "https://acct.api-us1.com"
    assert settings.api_token == Secret(TOKEN)
    assert settings.redis_url == "redis://cache.internal:6380/2"
    assert settings.broker_url == "redis://broker.internal:6381/0"
    assert settings.celery_broker_url == "redis://broker.internal:6381/0"
    assert settings.key_prefix == "{cs}"
    assert settings.debounce_s == 0.5
    assert settings.rate_limit == 2.5
    assert settings.rate_margin_ms == 75
    assert settings.http_timeout_s == 4.0
    assert settings.lease_s is None
    assert settings.timings.lease_s == 2 * 4.0 + 30.0
    assert settings.max_retry_age_s == 3600.0
    assert settings.backoff_base_s == 0.25
    assert settings.backoff_cap_s == 30.0
    assert settings.config_error_backoff_s == 120.0
    assert settings.confirmed_ttl_s == 0.0
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "console"
    assert settings.log_pii is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONTACT_SYNC_DEBOUNCE_S", "soon"),
        ("CONTACT_SYNC_DEBOUNCE_S", "-1"),
        ("CONTACT_SYNC_RATE_LIMIT", "0"),
        ("CONTACT_SYNC_RATE_LIMIT", "nan"),
        ("CONTACT_SYNC_RATE_MARGIN_MS", "-5"),
        ("CONTACT_SYNC_HTTP_TIMEOUT_S", "10s"),
        ("CONTACT_SYNC_HTTP_TIMEOUT_S", "0.01"),
        ("CONTACT_SYNC_MAX_RETRY_AGE_S", "one day"),
        ("CONTACT_SYNC_BACKOFF_BASE_S", "0"),
        ("CONTACT_SYNC_BACKOFF_CAP_S", "x"),
        ("CONTACT_SYNC_CONFIG_ERROR_BACKOFF_S", "-60"),
        ("CONTACT_SYNC_CONFIRMED_TTL_S", "forever"),
    ],
)
def test_malformed_number_names_the_variable(name: str, value: str) -> None:
    """A non-number, NaN or a value under the minimum raises ConfigError naming the variable."""
    with pytest.raises(ConfigError) as caught:
        load(**{name: value})
    assert caught.value.variable == name
    assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.parametrize("name", ["CONTACT_SYNC_LOG_PII", "CONTACT_SYNC_ALLOW_INSECURE_URL"])
def test_malformed_boolean_names_the_variable(name: str) -> None:
    """A boolean that is neither true nor false raises ConfigError naming the variable."""
    with pytest.raises(ConfigError) as caught:
        load(**{name: "maybe"})
    assert caught.value.variable == name
    assert "maybe" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("ON", True), ("no", False), ("", False)]
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    """Booleans accept the usual spellings in any case; empty means false."""
    assert load(CONTACT_SYNC_LOG_PII=raw).log_pii is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("CONTACT_SYNC_LOG_LEVEL", "VERBOSE"), ("CONTACT_SYNC_LOG_FORMAT", "xml")],
)
def test_unknown_log_level_or_format_names_the_variable(name: str, value: str) -> None:
    """A log level or format outside the allowed set raises ConfigError naming the variable."""
    with pytest.raises(ConfigError) as caught:
        load(**{name: value})
    assert caught.value.variable == name
    assert value in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379/0",
        "localhost:6379",
        "postgres://db/0",
        "var/run/redis.sock",
    ],
)
def test_redis_url_needs_a_redis_scheme(url: str) -> None:
    """CONTACT_SYNC_REDIS_URL must be redis://, rediss://, unix:// or sentinel://."""
    with pytest.raises(ConfigError) as caught:
        load(CONTACT_SYNC_REDIS_URL=url)
    assert caught.value.variable == "CONTACT_SYNC_REDIS_URL"


@pytest.mark.parametrize("variable", ["CONTACT_SYNC_REDIS_URL", "CELERY_BROKER_URL"])
@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sentinel://s1:26379/", "names no master"),
        ("sentinel://s1:26379;sentinel://s2:26379/mymaster", "commas"),
        ("sentinel://:secret@s1:port/mymaster", "port"),
        ("sentinel://s1/mymaster/zero", "/<master-name>[/<db>]"),
        ("sentinel://:secret@s1/mymaster?ssl=true", "no query string"),
        ("sentinel://,s2/mymaster", "no host"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_at_start(
    variable: str, url: str, complaint: str
) -> None:
    """A sentinel:// URL not in the documented form raises ConfigError naming the variable, the fault and the form, never the password."""
    with pytest.raises(ConfigError) as caught:
        load(**{variable: url})
    assert caught.value.variable == variable
    assert complaint in str(caught.value)
    assert "/<master-name>[/<db>]" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_sentinel_url_is_accepted_for_redis_and_broker() -> None:
    """A well-formed sentinel:// URL is kept as given, and the broker follows it by default."""
    url = "sentinel://:pw@s1:26379,s2,s3:26380/mymaster/2"
    settings = load(CONTACT_SYNC_REDIS_URL=url)
    assert settings.redis_url == url
    assert settings.celery_broker_url == url


@pytest.mark.parametrize(
    "url",
    [
        "rediss://cache:6380/0",
        "unix:///run/redis.sock",
    ],
)
def test_redis_url_accepts_every_redis_scheme(url: str) -> None:
    """TLS and unix-socket URLs are accepted as given."""
    assert load(CONTACT_SYNC_REDIS_URL=url).redis_url == url


def test_key_prefix_with_white_space_is_rejected() -> None:
    """A key prefix containing white space raises ConfigError naming CONTACT_SYNC_KEY_PREFIX."""
    with pytest.raises(ConfigError) as caught:
        load(CONTACT_SYNC_KEY_PREFIX="contact sync")
    assert caught.value.variable == "CONTACT_SYNC_KEY_PREFIX"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080", "http://127.1.2.3"],
)
def test_plain_http_is_allowed_for_loopback(url: str) -> None:
    """Plain http to a loopback address (the emulator) needs no extra switch."""
    assert load(ACTIVECAMPAIGN_URL=url).activecampaign_url == url


def test_plain_http_elsewhere_is_rejected() -> None:
    """Plain http to a non-loopback host raises ConfigError naming ACTIVECAMPAIGN_URL."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_URL="http://acct.api-us1.com")
    assert caught.value.variable == "ACTIVECAMPAIGN_URL"
    assert "https" in str(caught.value)


def test_insecure_url_switch_allows_plain_http() -> None:
    """CONTACT_SYNC_ALLOW_INSECURE_URL=true permits plain http to any host."""
    settings = load(
        ACTIVECAMPAIGN_URL="http://fake-ac.internal:8080", CONTACT_SYNC_ALLOW_INSECURE_URL="true"
    )
    assert settings.activecampaign_url == "http://fake-ac.internal:8080"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://acct.api-us1.com",
        "acct.api-us1.com",
        "https://",
        "https://acct.api-us1.com/?token=x",
        "https://acct.api-us1.com/#frag",
        "https://acct.api-us1.com/api/3?x=1",
        "https://acct.api-us1.com/api/3#top",
        "https://acct.api-us1.com/api/3/contact/sync",
        "https://acct.api-us1.com/api",
        "https://acct.api-us1.com/api/2",
        "https://acct.api-us1.com/v3/api/3",
        "https://acct.api-us1.com/app/contacts",
        "https://acct.api-us1.com/xapi/3",
    ],
)
def test_malformed_api_url_is_rejected(url: str) -> None:
    """Non-http(s) or host-less URLs, a query or fragment (even after /api/3), or a path other than /api/3 raise ConfigError naming ACTIVECAMPAIGN_URL."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_URL=url)
    assert caught.value.variable == "ACTIVECAMPAIGN_URL"


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.api-us1.com/api/3",
        "https://acct.api-us1.com/api/3/",
        "https://acct.api-us1.com/API/3",
        "https://acct.api-us1.com/Api/3//",
        "https://acct.api-us1.com//",
        "HTTPS://acct.api-us1.com",
    ],
)
def test_api_url_with_a_trailing_api_3_is_normalised(url: str) -> None:
    """A pasted /api/3 suffix (any case, trailing slashes) and trailing slashes are dropped."""
    assert load(ACTIVECAMPAIGN_URL=url).activecampaign_url == "https://acct.api-us1.com"


def test_api_url_normalisation_keeps_the_port() -> None:
    """Stripping /api/3 leaves the scheme, host and port as given (the emulator on loopback)."""
    settings = load(ACTIVECAMPAIGN_URL="http://127.0.0.1:8025/api/3/")
    assert settings.activecampaign_url == "http://127.0.0.1:8025"


def test_api_url_with_another_path_says_what_a_base_url_is() -> None:
    """A path other than /api/3 is refused with a message showing the base URL's form."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_URL="https://acct.api-us1.com/api/3/contact/sync")
    assert "must be the account's base URL like https://acct.api-us1.com" in str(caught.value)
    assert "'/api/3/contact/sync'" in str(caught.value)


def test_require_api_names_the_missing_url() -> None:
    """require_api() without a URL raises ConfigError naming ACTIVECAMPAIGN_URL."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_API_TOKEN=TOKEN).require_api()
    assert caught.value.variable == "ACTIVECAMPAIGN_URL"


def test_require_api_names_the_missing_token() -> None:
    """require_api() without a token raises ConfigError naming ACTIVECAMPAIGN_API_TOKEN."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_URL="https://acct.api-us1.com").require_api()
    assert caught.value.variable == "ACTIVECAMPAIGN_API_TOKEN"
    assert "ACTIVECAMPAIGN_API_TOKEN_FILE" in str(caught.value)


def test_require_api_returns_the_settings_when_complete() -> None:
    """require_api() returns the same settings when URL and token are present."""
    settings = load(ACTIVECAMPAIGN_URL="https://acct.api-us1.com", ACTIVECAMPAIGN_API_TOKEN=TOKEN)
    assert settings.require_api() is settings


def test_token_is_read_from_a_file(tmp_path: Path) -> None:
    """ACTIVECAMPAIGN_API_TOKEN_FILE supplies the token, without its trailing newline."""
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n", encoding="utf-8")
    settings = load(ACTIVECAMPAIGN_API_TOKEN_FILE=str(path))
    assert settings.api_token is not None
    assert settings.api_token.reveal() == TOKEN


def test_token_and_token_file_together_are_rejected(tmp_path: Path) -> None:
    """Setting both the token and the token file raises ConfigError naming the file variable."""
    path = tmp_path / "token"
    path.write_text(TOKEN, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_API_TOKEN=TOKEN, ACTIVECAMPAIGN_API_TOKEN_FILE=str(path))
    assert caught.value.variable == "ACTIVECAMPAIGN_API_TOKEN_FILE"
    assert TOKEN not in str(caught.value)


def test_empty_token_file_is_rejected(tmp_path: Path) -> None:
    """A token file holding only white space raises ConfigError naming the file variable."""
    path = tmp_path / "token"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_API_TOKEN_FILE=str(path))
    assert caught.value.variable == "ACTIVECAMPAIGN_API_TOKEN_FILE"
    assert "empty" in str(caught.value)


def test_missing_token_file_is_rejected(tmp_path: Path) -> None:
    """A token file that cannot be read raises ConfigError naming the file variable."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_API_TOKEN_FILE=str(tmp_path / "absent"))
    assert caught.value.variable == "ACTIVECAMPAIGN_API_TOKEN_FILE"


def test_token_with_inner_white_space_is_rejected() -> None:
    """A token containing white space inside raises ConfigError without echoing the token."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_API_TOKEN="abc def-secret")
    assert caught.value.variable == "ACTIVECAMPAIGN_API_TOKEN"
    assert "def-secret" not in str(caught.value)


@pytest.mark.parametrize("token", ["tök€n-secret", "token-\x7f-secret", "token-\u00a0-secret"])
def test_token_outside_printable_ascii_is_rejected(token: str) -> None:
    """A token with non-ASCII or DEL characters (HTTP headers are latin-1) raises ConfigError without echoing it."""
    with pytest.raises(ConfigError) as caught:
        load(ACTIVECAMPAIGN_API_TOKEN=token)
    assert caught.value.variable == "ACTIVECAMPAIGN_API_TOKEN"
    assert "secret" not in str(caught.value)


def test_token_never_appears_in_repr() -> None:
    """repr(settings), str(Secret) and repr(Secret) hide the token."""
    settings = load(ACTIVECAMPAIGN_URL="https://acct.api-us1.com", ACTIVECAMPAIGN_API_TOKEN=TOKEN)
    assert settings.api_token is not None
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    assert TOKEN not in str(settings.api_token)
    assert TOKEN not in repr(settings.api_token)
    assert TOKEN not in f"{settings.api_token}"
    assert settings.api_token.reveal() == TOKEN


def test_secret_refuses_pickling() -> None:
    """Pickling a Secret (or settings holding one) raises TypeError instead of dumping the token."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(TOKEN))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(load(ACTIVECAMPAIGN_API_TOKEN=TOKEN))


def test_secrets_compare_by_value() -> None:
    """Two Secrets with the same token are equal and hash alike; different tokens differ."""
    assert Secret(TOKEN) == Secret(TOKEN)
    assert hash(Secret(TOKEN)) == hash(Secret(TOKEN))
    assert Secret(TOKEN) != Secret("other")
    assert Secret(TOKEN) != TOKEN


def test_settings_are_frozen() -> None:
    """Assigning to a Settings field raises FrozenInstanceError; replace() makes a new object."""
    settings = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.debounce_s = 0.0  # type: ignore[misc]
    changed = settings.replace(debounce_s=0.0)
    assert changed.debounce_s == 0.0
    assert settings.debounce_s == 2.0


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, from_env() reads the process environment."""
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", "from-os")
    assert Settings.from_env().key_prefix == "from-os"
