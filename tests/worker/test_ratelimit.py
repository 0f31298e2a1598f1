"""worker.ratelimit: window numbers, slots, pauses and waiting, on a real Redis.

Also documents, with a measurement, why the limiter is ours and not the ``limits`` library.
"""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from worker.keys import Keys
from worker.ratelimit import Acquired, RateLimiter, window_for


class FakeClock:
    """A monotonic clock that only moves when sleep() is called, and records the sleeps."""

    def __init__(self, on_sleep: object = None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if callable(self.on_sleep):
            self.on_sleep()


def must_not_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


def limiter(client: redis.Redis, keys: Keys, **options: object) -> RateLimiter:
    options.setdefault("rate_per_s", 5.0)
    options.setdefault("sleep", must_not_sleep)
    return RateLimiter(client, keys, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "margin", "expected"),
    [
        (5.0, 50, (5, 1050)),
        (5.0, 0, (5, 1000)),
        (1.0, 50, (1, 1050)),
        (10.0, 25, (10, 1025)),
        (2.5, 50, (2, 1050)),
        (0.5, 50, (1, 2050)),
        (0.25, 10, (1, 4010)),
        (0.3, 0, (1, 3333)),
    ],
)
def test_window_for(rate: float, margin: int, expected: tuple[int, int]) -> None:
    """window_for gives (requests, window ms): whole requests per second, wider windows below 1/s."""
    assert window_for(rate, margin_ms=margin) == expected


def test_limiter_uses_the_window(redis_client: redis.Redis, keys: Keys) -> None:
    """A limiter exposes the limit and window it enforces."""
    slow = limiter(redis_client, keys, rate_per_s=0.5, margin_ms=50)
    assert (slow.limit, slow.window_ms) == (1, 2050)


def test_try_acquire_hands_out_exactly_limit_slots(redis_client: redis.Redis, keys: Keys) -> None:
    """Five slots are free at once; the sixth gets a positive wait no longer than the window."""
    five = limiter(redis_client, keys)
    assert [five.try_acquire() for _ in range(5)] == [0.0] * 5
    wait_s = five.try_acquire()
    assert 0.0 < wait_s <= five.window_ms / 1000.0
    assert redis_client.llen(keys.rate_log) == 5


def test_slots_are_shared_by_every_limiter(redis_client: redis.Redis, keys: Keys) -> None:
    """Limiters on the same keys (other workers) share one budget."""
    workers = [limiter(redis_client, keys) for _ in range(3)]
    granted = sum(1 for n in range(9) if workers[n % 3].try_acquire() == 0.0)
    assert granted == 5


def test_prefixes_do_not_share_slots(
    redis_client: redis.Redis, keys: Keys, key_prefix: str
) -> None:
    """Another key prefix (another account) has its own budget."""
    ours = limiter(redis_client, keys, rate_per_s=1.0)
    theirs = limiter(redis_client, Keys(f"{key_prefix}:other"), rate_per_s=1.0)
    assert ours.try_acquire() == 0.0
    assert theirs.try_acquire() == 0.0
    assert ours.try_acquire() > 0.0


def test_pause_blocks_everyone(redis_client: redis.Redis, keys: Keys) -> None:
    """After pause(30) no limiter gets a slot, and each is told to wait about 30 s."""
    first, second = limiter(redis_client, keys), limiter(redis_client, keys)
    first.pause(30)
    for each in (first, second):
        assert 29.0 < each.try_acquire() <= 30.0
    assert redis_client.llen(keys.rate_log) == 0
    assert 29.0 < second.paused_for_s(redis_client) <= 30.0


def test_pause_never_shortens_a_longer_pause(redis_client: redis.Redis, keys: Keys) -> None:
    """A shorter pause while a longer one is in force changes nothing; a longer one extends it."""
    one = limiter(redis_client, keys)
    one.pause(30)
    one.pause(2)
    assert 29.0 < one.paused_for_s(redis_client) <= 30.0
    one.pause(60)
    assert 59.0 < one.paused_for_s(redis_client) <= 60.0


def test_pause_rounds_up_to_a_millisecond(redis_client: redis.Redis, keys: Keys) -> None:
    """A zero or tiny pause still lasts at least a millisecond, never a negative time."""
    one = limiter(redis_client, keys)
    one.pause(0)
    assert 0.0 <= one.paused_for_s(redis_client) <= 0.001


def test_no_pause_reads_as_zero(redis_client: redis.Redis, keys: Keys) -> None:
    """paused_for_s is 0 when no pause was set."""
    assert limiter(redis_client, keys).paused_for_s(redis_client) == 0.0


def test_acquire_takes_a_free_slot_without_sleeping(redis_client: redis.Redis, keys: Keys) -> None:
    """acquire() returns at once when a slot is free."""
    clock = FakeClock()
    one = limiter(redis_client, keys, sleep=must_not_sleep, monotonic=clock.monotonic)
    assert one.acquire(max_wait_s=5) == Acquired(True, 0.0)


def test_acquire_gives_up_when_the_wait_is_too_long(redis_client: redis.Redis, keys: Keys) -> None:
    """acquire(max_wait_s) returns ok=False without sleeping when the wait would exceed it, and says how long the wait is."""
    clock = FakeClock()
    one = limiter(redis_client, keys, sleep=clock.sleep, monotonic=clock.monotonic)
    one.pause(10)
    result = one.acquire(max_wait_s=5)
    assert (result.ok, result.waited_s) == (False, 0.0)
    assert 9.5 < result.retry_in_s <= 10.0
    assert clock.sleeps == []


def test_acquire_gives_up_after_waiting_part_of_the_budget(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """Time already waited counts against max_wait_s."""
    clock = FakeClock()
    one = limiter(redis_client, keys, sleep=clock.sleep, monotonic=clock.monotonic)
    one.pause(3)
    # Each fake sleep moves the fake clock but not Redis, so the pause still seems ~3 s long.
    result = one.acquire(max_wait_s=7)
    assert result.ok is False
    assert len(clock.sleeps) == 2
    assert 5.5 < result.waited_s <= 7.0


def test_acquire_sleeps_for_the_wait_then_takes_the_slot(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """acquire() sleeps the announced wait (plus 1 ms) and then gets the slot."""

    def pause_ends() -> None:
        redis_client.delete(keys.rate_pause)

    clock = FakeClock(on_sleep=pause_ends)
    one = limiter(redis_client, keys, sleep=clock.sleep, monotonic=clock.monotonic)
    one.pause(2)
    result = one.acquire(max_wait_s=5)
    assert result.ok is True
    (slept,) = clock.sleeps
    assert 1.9 < slept <= 2.001
    assert result.waited_s == pytest.approx(slept)


# -- why not the `limits` library --------------------------------------------------------


class SkewedClocks:
    """Stands in for ``time`` inside limits.storage.redis: each host reads its own clock.

    ``real`` is the true time; ``skew_s`` is how far the host currently calling is off.
    """

    def __init__(self, real: float) -> None:
        self.real = real
        self.skew_s = 0.0

    def time(self) -> float:
        return self.real + self.skew_s


@pytest.fixture
def limits_storage(redis_url: str, key_prefix: str) -> Iterator[RedisStorage]:
    storage = RedisStorage(redis_url, key_prefix=f"{key_prefix}:limits")
    yield storage
    storage.reset()
    storage.storage.close()


def test_limits_library_overruns_under_client_clock_skew_but_ours_does_not(
    monkeypatch: pytest.MonkeyPatch,
    limits_storage: RedisStorage,
    redis_client: redis.Redis,
    keys: Keys,
) -> None:
    """With one host 0.6 s ahead, `limits` admits 10 requests in 0.6 real seconds; ours admits 5."""
    clocks = SkewedClocks(real=1_800_000_000.0)
    import limits.storage.redis as limits_redis

    monkeypatch.setattr(limits_redis, "time", types.SimpleNamespace(time=clocks.time))
    five_per_second = RateLimitItemPerSecond(5)
    host_a = MovingWindowRateLimiter(limits_storage)
    host_b = MovingWindowRateLimiter(limits_storage)

    admitted = 0
    # Host A, clock right: a burst at real time t.
    clocks.skew_s = 0.0
    admitted += sum(host_a.hit(five_per_second, "account") for _ in range(5))
    assert host_a.hit(five_per_second, "account") is False  # the library works without skew
    # Host B, clock 0.6 s ahead: a burst 0.6 real seconds later, stamped as t + 1.2.
    clocks.real += 0.6
    clocks.skew_s = 0.6
    admitted += sum(host_b.hit(five_per_second, "account") for _ in range(5))
    assert admitted == 10  # twice the account's limit inside one real second

    # Ours reads the Redis server's clock, so client clocks (skewed or not) play no part.
    ours_a = limiter(redis_client, keys, monotonic=lambda: 0.0)
    ours_b = limiter(redis_client, keys, monotonic=lambda: 0.6 + 1_000_000.0)
    granted = sum(ours_a.try_acquire() == 0.0 for _ in range(5))
    granted += sum(ours_b.try_acquire() == 0.0 for _ in range(5))
    assert granted == 5
