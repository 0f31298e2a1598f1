"""The one way contact-sync opens a Redis connection: producers, workers, CLI and metrics.

One factory, so every part of the system shares the same failure behaviour: it fails fast
when Redis is unreachable (5 s to connect, 5 s per reply) instead of hanging a web request
or a terminal, and it checks idle connections before use, so a restarted Redis is
reconnected to without a restart of our own. The pump's longest blocking read is 0.1 s,
well inside the reply timeout.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis

from worker.errors import ConfigError

__all__ = ["TIMEOUT_S", "connect", "redacted_url", "text"]

TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 15


def connect(
    url: str, *, timeout_s: float = TIMEOUT_S, variable: str = "CONTACT_SYNC_REDIS_URL"
) -> redis.Redis:
    """A client for ``url`` that gives up after ``timeout_s`` to connect or for a reply.

    A URL redis-py cannot parse raises ConfigError naming ``variable``. No connection is
    made until the first command.
    """
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            health_check_interval=HEALTH_CHECK_INTERVAL_S,
        )
    except ValueError as exc:
        raise ConfigError(variable, f"{redacted_url(url)}: {exc}") from None


def redacted_url(url: str) -> str:
    """The URL without user, password and query string, which may carry a password."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes: clients are made without decode_responses)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
