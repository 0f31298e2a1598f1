"""worker.pump_thread: one pump across workers, taken over when its holder stops (real Redis)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from worker.keys import Keys
from worker.pump import PumpReport
from worker.pump_lock import PumpLock
from worker.pump_thread import PumpThread


class WindowRecorder:
    """A stand-in for Pump: each run is a short window of 10 ms cycles, recorded by name."""

    def __init__(self, name: str, windows: list[tuple[str, float, float]]) -> None:
        self.name = name
        self.windows = windows

    def run(self, lock: PumpLock) -> PumpReport:
        report = PumpReport()
        started = time.monotonic()
        while time.monotonic() - started < 0.1:
            report.cycles += 1
            time.sleep(0.01)
            if not lock.keep():
                break
        self.windows.append((self.name, started, time.monotonic()))
        return report


def wait_for(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def keys(redis_client: redis.Redis, key_prefix: str) -> Iterator[Keys]:
    yield Keys(key_prefix)
    redis_client.delete(Keys(key_prefix).pump_lock)


def make_thread(
    redis_client: redis.Redis, keys: Keys, name: str, windows: list[tuple[str, float, float]]
) -> PumpThread:
    return PumpThread(
        lambda: PumpLock(redis_client, keys, node=name, ttl_s=2),
        lambda: WindowRecorder(name, windows),  # type: ignore[arg-type,return-value]
        retry_s=0.05,
    )


def test_one_thread_pumps_and_the_other_takes_over_when_it_stops(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """Two workers' threads: windows never overlap; stopping the holder releases the lock and the other pumps within a retry."""
    windows: list[tuple[str, float, float]] = []
    first = make_thread(redis_client, keys, "w1@host", windows)
    second = make_thread(redis_client, keys, "w2@host", windows)
    first.start()
    wait_for(lambda: len(windows) >= 2)
    second.start()
    time.sleep(0.3)
    holder = redis_client.get(keys.pump_lock)
    assert holder is not None
    assert holder.startswith(b"w1@host/")
    stopped_at = time.monotonic()
    first.stop(timeout_s=2)
    assert not first.is_alive()
    assert time.monotonic() - stopped_at < 0.5  # within a cycle, not at the window's end
    wait_for(lambda: any(name == "w2@host" for name, _, _ in windows))
    takeover_s = min(start for name, start, _ in windows if name == "w2@host") - stopped_at
    second.stop(timeout_s=2)
    assert redis_client.get(keys.pump_lock) is None
    ordered = sorted(windows, key=lambda window: window[1])
    for (_, _, previous_end), (_, start, _) in itertools.pairwise(ordered):
        assert start >= previous_end  # one pump at a time
    assert takeover_s < 0.5


def test_a_redis_error_is_logged_once_and_retried(
    redis_client: redis.Redis, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the lock cannot be read the thread keeps trying, logging pump.error once, then pump.recovered."""
    failures = threading.Event()
    calls = {"n": 0}
    windows: list[tuple[str, float, float]] = []

    def flaky_lock() -> PumpLock:
        calls["n"] += 1
        if calls["n"] <= 3:
            failures.set()
            raise redis.ConnectionError("Redis is restarting")
        return PumpLock(redis_client, keys, node="w1@host", ttl_s=2)

    thread = PumpThread(
        flaky_lock,
        lambda: WindowRecorder("w1@host", windows),  # type: ignore[arg-type,return-value]
        retry_s=0.02,
    )
    thread.start()
    wait_for(lambda: windows)
    thread.stop(timeout_s=2)
    lines = capsys.readouterr().out.splitlines()
    assert sum("pump.error" in line for line in lines) == 1
    assert any("pump.recovered" in line for line in lines)
    assert calls["n"] > 3
