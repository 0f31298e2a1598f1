"""worker.backoff: delay numbers and the retry decision for every error class."""

from __future__ import annotations

import random
from typing import Any

import pytest

from worker.backoff import RetryPlan, backoff_delay_s, config_error_delay_s, plan_retry
from worker.errors import (
    ApiConfigError,
    ApiError,
    ApiRejected,
    ApiServerError,
    ApiStatusError,
    ApiTransportError,
    RateLimited,
)


class EdgeRng(random.Random):
    """uniform() returns the lower or the upper bound, so tests see the exact range."""

    def __init__(self, *, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b if self.upper else a


HIGH = EdgeRng(upper=True)
LOW = EdgeRng(upper=False)


def plan(error: ApiError, *, attempt: int = 1, age_s: float = 0.0, rng: Any = HIGH) -> RetryPlan:
    return plan_retry(
        error,
        attempt=attempt,
        age_s=age_s,
        max_retry_age_s=86400.0,
        base_s=1.0,
        cap_s=300.0,
        config_error_base_s=60.0,
        rng=rng,
    )


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0), (50, 300.0), (10_000, 300.0)],
)
def test_backoff_ceiling_doubles_per_attempt_and_caps(attempt: int, ceiling: float) -> None:
    """The full-jitter ceiling is base * 2**(attempt-1), capped at cap_s."""
    assert backoff_delay_s(attempt, base_s=1.0, cap_s=300.0, rng=HIGH) == ceiling
    assert backoff_delay_s(attempt, base_s=1.0, cap_s=300.0, rng=LOW) == 0.0


def test_backoff_treats_attempt_zero_like_the_first() -> None:
    """Attempt numbers below 1 use the base ceiling instead of shrinking it."""
    assert backoff_delay_s(0, base_s=0.5, cap_s=300.0, rng=HIGH) == 0.5
    assert backoff_delay_s(-3, base_s=0.5, cap_s=300.0, rng=HIGH) == 0.5


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    """With a real seeded rng, delays fall in [0, ceiling] and cover most of that range."""
    rng = random.Random(1234)
    delays = [backoff_delay_s(4, base_s=1.0, cap_s=300.0, rng=rng) for _ in range(2000)]
    assert all(0.0 <= delay <= 8.0 for delay in delays)
    assert min(delays) < 0.2
    assert max(delays) > 7.8


def test_backoff_is_reproducible_with_a_seed() -> None:
    """The same seed gives the same delays."""
    first = [backoff_delay_s(3, base_s=1.0, cap_s=60.0, rng=random.Random(7)) for _ in range(3)]
    second = [backoff_delay_s(3, base_s=1.0, cap_s=60.0, rng=random.Random(7)) for _ in range(3)]
    assert first == second


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 20])
def test_config_error_delay_never_drops_below_half_the_ceiling(attempt: int) -> None:
    """Equal jitter: a configuration retry waits between half the ceiling and the ceiling."""
    ceiling = min(600.0, 60.0 * 2 ** (attempt - 1))
    assert config_error_delay_s(attempt, base_s=60.0, cap_s=600.0, rng=LOW) == ceiling / 2
    assert config_error_delay_s(attempt, base_s=60.0, cap_s=600.0, rng=HIGH) == ceiling
    rng = random.Random(99)
    for _ in range(200):
        delay = config_error_delay_s(attempt, base_s=60.0, cap_s=600.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_rejected_is_dead_lettered_at_once() -> None:
    """ApiRejected (400/422) is dead-lettered as api_rejected on the first attempt."""
    assert plan(ApiRejected(422, ["Email invalid"])) == RetryPlan(dead_reason="api_rejected")


def test_rejected_stays_api_rejected_even_when_old() -> None:
    """A rejection after a long retry history is still reported as api_rejected."""
    assert plan(ApiRejected(400), age_s=10**6).dead_reason == "api_rejected"


@pytest.mark.parametrize(
    "error",
    [ApiTransportError("timeout"), ApiServerError(500), ApiServerError(502), ApiServerError(503)],
)
def test_transport_and_server_errors_back_off(error: ApiError) -> None:
    """Transport errors and 5xx retry after the full-jitter delay for their attempt."""
    assert plan(error, attempt=3, rng=HIGH) == RetryPlan(delay_s=4.0)
    assert plan(error, attempt=3, rng=LOW) == RetryPlan(delay_s=0.0)


def test_rate_limited_waits_at_least_retry_after() -> None:
    """A 429 retries no sooner than Retry-After, even when the jitter draws less."""
    assert plan(RateLimited(7.5), attempt=1, rng=LOW) == RetryPlan(delay_s=7.5)
    assert plan(RateLimited(7.5), attempt=1, rng=HIGH).delay_s == 7.5


def test_rate_limited_keeps_a_longer_backoff() -> None:
    """When the backoff is longer than Retry-After, the backoff wins."""
    assert plan(RateLimited(2.0), attempt=6, rng=HIGH).delay_s == 32.0


@pytest.mark.parametrize("status", [401, 402, 403, 404])
def test_config_errors_retry_slowly_and_are_flagged(status: int) -> None:
    """401/402/403/404 retry after at least half the config backoff and set config_error."""
    low = plan(ApiConfigError(status), attempt=1, rng=LOW)
    high = plan(ApiConfigError(status), attempt=1, rng=HIGH)
    assert low == RetryPlan(delay_s=30.0, config_error=True)
    assert high == RetryPlan(delay_s=60.0, config_error=True)
    assert plan(ApiConfigError(status), attempt=5, rng=HIGH).delay_s == 300.0
    assert plan(ApiConfigError(status), attempt=20, rng=LOW).delay_s == 150.0


def test_config_error_base_above_the_cap_is_not_cut() -> None:
    """A config backoff longer than the normal cap is still honoured."""
    result = plan_retry(
        ApiConfigError(403),
        attempt=1,
        age_s=0,
        max_retry_age_s=86400,
        base_s=1.0,
        cap_s=10.0,
        config_error_base_s=120.0,
        rng=LOW,
    )
    assert result.delay_s == 60.0


@pytest.mark.parametrize(
    "error",
    [ApiTransportError("refused"), ApiServerError(503), RateLimited(1.0), ApiConfigError(403)],
)
def test_retryable_errors_expire_after_max_retry_age(error: ApiError) -> None:
    """At or beyond max_retry_age_s a retryable failure is dead-lettered as retry_expired."""
    assert plan(error, age_s=86399.9).dead_reason is None
    expired = plan(error, age_s=86400.0)
    assert expired.dead_reason == "retry_expired"
    assert expired.config_error is isinstance(error, ApiConfigError)


class TeapotError(ApiError):
    """An ApiError subclass no policy knows about."""


@pytest.mark.parametrize("error", [TeapotError("418"), ApiStatusError(418)])
def test_unknown_error_class_is_a_type_error(error: ApiError) -> None:
    """An ApiError without a retry policy raises TypeError instead of guessing."""
    with pytest.raises(TypeError, match="no retry policy"):
        plan(error)
