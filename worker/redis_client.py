"""The one way contact-sync opens a Redis connection: producers, workers, CLI and metrics.

One factory, so every part of the system shares the same failure behaviour: it fails fast
when Redis is unreachable (5 s to connect, 5 s per reply) instead of hanging a web request
or a terminal, and it checks idle connections before use, so a restarted Redis is
reconnected to without a restart of our own. The pump's longest blocking read is 0.1 s,
well inside the reply timeout.

``CONTACT_SYNC_REDIS_URL`` takes redis-py's ``redis://``, ``rediss://`` and ``unix://``
URLs, or a Redis Sentinel deployment (docs/sentinel.md)::

    sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]

The port defaults to 26379; the user and password are the master's (and its replicas'),
the sentinels are asked without one. A sentinel client asks the sentinels for the current
master whenever it opens a connection, and at most once a second before it hands one out,
so after a failover it finds the new master by itself; ``SentinelUrl.kombu_url`` turns the
same URL into the Celery broker's form.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from worker.errors import ConfigError

__all__ = [
    "MASTER_CHECK_INTERVAL_S",
    "SENTINEL_FORMAT",
    "TIMEOUT_S",
    "SentinelUrl",
    "connect",
    "is_sentinel_url",
    "redacted_url",
    "text",
]

TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 15
SENTINEL_PORT = 26379
# A sentinel answers from memory in well under a millisecond; one that takes a second is
# as good as down, and the next one should be asked.
SENTINEL_TIMEOUT_S = 1.0
MASTER_CHECK_INTERVAL_S = 1.0
SENTINEL_FORMAT = "sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]"


def _retry_once() -> Retry:
    # A pooled connection to a server that died (a restart, a failover) fails on its next
    # command. One retry on a fresh connection, which for a sentinel client means asking the
    # sentinels for the master again, turns that into a success as soon as a master answers.
    # Connection errors only: a timed-out command may have run, and a second wait would
    # double the time a caller is stuck.
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def connect(
    url: str, *, timeout_s: float = TIMEOUT_S, variable: str = "CONTACT_SYNC_REDIS_URL"
) -> redis.Redis:
    """A client for ``url`` that gives up after ``timeout_s`` to connect or for a reply.

    A ``sentinel://`` URL gives a client of the master the sentinels name at each new
    connection. A URL that cannot be parsed raises ConfigError naming ``variable``. No
    connection is made until the first command.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": _retry_once(),
    }
    try:
        if is_sentinel_url(url):
            return SentinelUrl.parse(url).master(**options)
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigError(variable, f"{redacted_url(url)}: {exc}") from None


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith("sentinel:")


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``sentinel://`` URL: where the sentinels are and which master to ask for."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """Parse ``SENTINEL_FORMAT``; ValueError says what is wrong, never with the password."""
        scheme, sep, rest = url.partition("://")
        if scheme.lower() != "sentinel" or not sep:
            raise ValueError(f"expected {SENTINEL_FORMAT}")
        if ";" in rest:
            # kombu's own form (sentinel://a;sentinel://b) cannot carry the master's name.
            raise ValueError(f"separate the sentinels with commas: {SENTINEL_FORMAT}")
        if "?" in rest or "#" in rest:
            raise ValueError(f"takes no query string or fragment: {SENTINEL_FORMAT}")
        netloc, _, path = rest.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        username = password = None
        if at:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
        sentinels = tuple(_host_port(each) for each in hosts.split(","))
        parts = path.rstrip("/").split("/") if path.strip("/") else []
        if not parts or not parts[0]:
            raise ValueError(f"names no master: {SENTINEL_FORMAT}")
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise ValueError(f"the path must be /<master-name>[/<db>]: {SENTINEL_FORMAT}")
        return cls(
            sentinels=sentinels,
            master_name=unquote(parts[0]),
            db=int(parts[1]) if len(parts) == 2 else 0,
            username=username,
            password=password,
        )

    def master(self, **options: Any) -> redis.Redis:
        """A client of the current master; ``options`` are the connections' (timeouts...)."""
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis.sentinel has no hints
            list(self.sentinels),
            sentinel_kwargs=self.sentinel_options(options),
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            self.master_name,
            connection_pool_class=_MasterFollowingPool,
            db=self.db,
            username=self.username,
            password=self.password,
            **options,
        )
        return client

    @staticmethod
    def sentinel_options(options: dict[str, Any]) -> dict[str, Any]:
        """How the sentinels themselves are asked: the same timeouts, no retry.

        redis-py's clients retry three times with up to 14 s of back-off by default; a
        sentinel that is down would hold every lookup that long before the next one is
        asked. Without retries the next sentinel is asked at once.
        """
        chosen = {
            name: min(value, SENTINEL_TIMEOUT_S)
            for name, value in options.items()
            if name in ("socket_connect_timeout", "socket_timeout")
        }
        return {**chosen, "retry": Retry(NoBackoff(), 0)}

    def kombu_url(self) -> str:
        """The Celery broker URL kombu's Redis transport takes: one URL per sentinel, ``;``."""
        auth = ""
        if self.username or self.password is not None:
            auth = quote(self.username or "", safe="") + ":" + quote(self.password or "", safe="")
            auth += "@"
        return ";".join(
            f"sentinel://{auth}{_netloc(host, port)}/{self.db}" for host, port in self.sentinels
        )

    def kombu_transport_options(self, *, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """Celery's ``broker_transport_options`` for this URL (the master's name is one)."""
        timeouts = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s}
        return {"master_name": self.master_name, "sentinel_kwargs": self.sentinel_options(timeouts)}


class _MasterFollowingPool(SentinelConnectionPool):
    """redis-py's pool of master connections, which also notices a failover that broke
    no connection.

    redis-py asks the sentinels only when it opens a connection. After a manual failover
    (``SENTINEL FAILOVER``) or a partition, the old master lives on, and open connections
    keep writing to it until the sentinels demote it, about 10 s later; its data is then
    replaced by the new master's, and those writes are lost. Asking again at most once a
    second before handing out a connection (``get_master_address`` closes the idle ones to
    a former master) shortens that to about a second.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check_at = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check_at:
            self._next_check_at = now + MASTER_CHECK_INTERVAL_S
            # No sentinel answers: keep what we have; a broken connection asks again anyway.
            with contextlib.suppress(redis.RedisError):
                self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)


def _host_port(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, bracket, tail = text[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"cannot read the sentinel address {text!r}: {SENTINEL_FORMAT}")
        port_text = tail[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"a sentinel address has no host: {SENTINEL_FORMAT}")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the sentinel port {port_text!r} is not a number: {SENTINEL_FORMAT}")
    return host, int(port_text)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redacted_url(url: str) -> str:
    """The URL without user, password and query string, which may carry a password."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes: clients are made without decode_responses)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
