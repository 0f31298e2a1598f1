"""The kombu workaround that keeps a worker alive through a Redis restart."""

from __future__ import annotations

import kombu
import pytest
import redis

from worker._kombu_fixes import patch_redis_channel_close


def test_a_channel_of_a_detached_transport_raises_a_connection_error(redis_url: str) -> None:
    """Once kombu detached the transport, a Redis channel raises a connection error Celery recovers from, not AttributeError."""
    patch_redis_channel_close()
    patch_redis_channel_close()  # idempotent
    connection = kombu.Connection(redis_url)
    channel = connection.channel()
    try:
        assert channel._connparams()["port"] == connection.port
        channel.connection.client = None  # what Connection.collect() leaves behind
        with pytest.raises(redis.ConnectionError):
            channel._connparams()
        assert issubclass(redis.ConnectionError, tuple(connection.connection_errors))
    finally:
        channel.connection.client = connection
        connection.close()
