"""worker.redis_client: the one factory of Redis clients, for redis:// and sentinel:// URLs.

The parsing and the Celery broker's form are checked as plain values; what only a server
shows (a dropped connection, a sentinel that names the master, a failover) against private
redis-server and sentinel processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from tests._redis_server import SentinelCluster, free_port, redis_required
from worker.celery_app import create_app
from worker.errors import ConfigError
from worker.redis_client import MASTER_CHECK_INTERVAL_S, SentinelUrl, connect, redacted_url
from worker.settings import Settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sentinel://s1/mymaster",
            SentinelUrl(sentinels=(("s1", 26379),), master_name="mymaster"),
        ),
        (
            "sentinel://:p%40ss@s1:26380,s2,10.0.0.3:26381/my-master/3",
            SentinelUrl(
                sentinels=(("s1", 26380), ("s2", 26379), ("10.0.0.3", 26381)),
                master_name="my-master",
                db=3,
                password="p@ss",
            ),
        ),
        (
            "SENTINEL://app:pw@[::1]:26379,[fd00::2]/m/",
            SentinelUrl(
                sentinels=(("::1", 26379), ("fd00::2", 26379)),
                master_name="m",
                username="app",
                password="pw",
            ),
        ),
    ],
)
def test_sentinel_urls_are_parsed(url: str, expected: SentinelUrl) -> None:
    """Hosts split on commas with 26379 as the default port, IPv6 in brackets, the master's
    name, the db (0 by default), and a percent-encoded user and password."""
    assert SentinelUrl.parse(url) == expected


def test_the_broker_url_is_kombus_form_of_the_same_url() -> None:
    """Celery gets one sentinel:// URL per sentinel joined by ';', each with the password and
    db, and the master's name as the master_name transport option."""
    url = SentinelUrl.parse("sentinel://:p%40ss@s1:26380,[::1]/mymaster/2")
    assert url.kombu_url() == "sentinel://:p%40ss@s1:26380/2;sentinel://:p%40ss@[::1]:26379/2"
    options = url.kombu_transport_options(timeout_s=3)
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"]["socket_timeout"] == 1  # a slower sentinel is skipped
    assert options["sentinel_kwargs"]["retry"].get_retries() == 0


def test_create_app_points_the_broker_at_the_sentinels() -> None:
    """A sentinel:// CONTACT_SYNC_REDIS_URL makes the Celery broker kombu's Sentinel
    transport, with the master's name and our key prefix."""
    settings = Settings(redis_url="sentinel://s1:26379,s2:26379/mymaster/1", key_prefix="p")
    app = create_app(settings)
    assert app.conf.broker_url == "sentinel://s1:26379/1;sentinel://s2:26379/1"
    options = app.conf.broker_transport_options
    assert options["master_name"] == "mymaster"
    assert options["global_keyprefix"] == "p:kombu:"
    with app.connection_for_write() as connection:
        assert connection.transport_cls == "sentinel"
        assert [alt.split("/")[2] for alt in connection.alt] == ["s1:26379", "s2:26379"]


def test_connect_builds_a_master_client_from_a_sentinel_url() -> None:
    """connect() on a sentinel:// URL returns a client whose pool asks the sentinels for the
    named master, with the URL's db and password and our timeouts; nothing connects yet."""
    client = connect("sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/4", timeout_s=2.5)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.is_master
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (4, "pw", 2.5)
    assert kwargs["retry"].get_retries() == 1
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    client.close()


def test_a_bad_sentinel_url_raises_config_error_without_the_password() -> None:
    """connect() on a malformed sentinel URL names the variable and hides the password."""
    with pytest.raises(ConfigError) as caught:
        connect("sentinel://:hunter2@s1:26379/", variable="X_URL")
    assert caught.value.variable == "X_URL"
    assert "hunter2" not in str(caught.value)
    assert redacted_url("sentinel://:hunter2@s1,s2/m") == "sentinel://s1,s2/m"


def test_a_connection_the_server_dropped_is_replaced_without_an_error(redis_url: str) -> None:
    """A pooled connection that the server closed (as a restart or a failover does) costs
    the next command a retry on a fresh connection, not an error."""
    client = connect(redis_url)
    other = redis.Redis.from_url(redis_url)
    try:
        client.client_setname("cs-dropped")
        assert client.ping()
        assert other.client_kill_filter(_type="normal", skipme=True) >= 1  # drops client's
        assert client.ping()
        assert client.client_getname() in (None, b"")  # it is a new connection
    finally:
        client.close()
        other.close()


@pytest.fixture
def deployment() -> Iterator[SentinelCluster]:
    """A master, one replica and one sentinel (quorum 1), private to the test."""
    try:
        started = SentinelCluster(replicas=1, sentinels=1).start()
    except RuntimeError as exc:
        if redis_required():
            pytest.fail(f"Redis and Sentinel are required in CI: {exc}")
        pytest.skip(f"cannot run a Sentinel deployment here: {exc}")
    yield started
    started.stop()


def test_a_sentinel_client_writes_to_the_master_the_sentinels_name(
    deployment: SentinelCluster,
) -> None:
    """Producers, the store and the broker reach the master through the sentinels: a write
    through connect(), and one through Celery's broker connection, land on the master."""
    master = redis.Redis(port=deployment.servers[0].port)
    client = connect(deployment.url)
    app = create_app(Settings(redis_url=deployment.url, key_prefix="cs-test-broker"))
    try:
        client.set("cs-test-sentinel", "through sentinel")
        assert master.get("cs-test-sentinel") == b"through sentinel"
        with app.connection_for_write() as connection:
            connection.default_channel.client.set("cs-test-kombu", "through kombu")
        # kombu puts its keys under our prefix (global_keyprefix).
        assert master.get("cs-test-broker:kombu:cs-test-kombu") == b"through kombu"
    finally:
        client.close()
        master.close()


def test_a_dead_sentinel_is_skipped_at_once(deployment: SentinelCluster) -> None:
    """A sentinel that is down (first in the URL) does not hold the lookup: the next one
    answers at once, without redis-py's default back-off between retries."""
    (watcher,) = deployment.watchers
    url = f"sentinel://127.0.0.1:{free_port()},127.0.0.1:{watcher.port}/{deployment.master_name}"
    client = connect(url)
    try:
        started = time.monotonic()
        assert client.ping()
        assert time.monotonic() - started < 1.0
    finally:
        client.close()


def test_a_client_follows_the_master_through_a_manual_failover(
    deployment: SentinelCluster,
) -> None:
    """After SENTINEL FAILOVER, whose old master lives on and accepts writes until the
    sentinels demote it about 10 s later, the same client writes to the promoted replica
    within MASTER_CHECK_INTERVAL_S of the sentinels naming it, without an error."""
    old_port, new_port = deployment.servers[0].port, deployment.servers[1].port
    client = connect(deployment.url)
    sentinel = deployment.watchers[0].client()
    old, promoted = redis.Redis(port=old_port), redis.Redis(port=new_port)
    try:
        client.set("cs-test-before", "1")
        assert client.connection_pool.get_master_address()[1] == old_port
        # Replication is asynchronous: fail over only once the replica has the write.
        _until(lambda: promoted.get("cs-test-before") == b"1", "the write replicated")
        _until(lambda: _failover(sentinel, deployment.master_name), "a failover accepted")
        _until(lambda: deployment.master_port() == new_port, "the replica promoted")
        time.sleep(MASTER_CHECK_INTERVAL_S + 0.1)
        client.set("cs-test-after", "2")  # its pooled connection is to the old master
        assert promoted.get("cs-test-after") == b"2"
        assert promoted.get("cs-test-before") == b"1"
        assert old.info("replication")["role"] == "master", "demoted already: nothing shown"
        assert old.get("cs-test-after") is None
    finally:
        for each in (client, sentinel, old, promoted):
            each.close()


def _failover(sentinel: redis.Redis, name: str) -> bool:
    try:
        return bool(sentinel.execute_command("SENTINEL", "FAILOVER", name))
    except redis.ResponseError as exc:  # NOGOODSLAVE until the sentinel has seen the replica
        if "NOGOODSLAVE" not in str(exc):
            raise
        return False


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
