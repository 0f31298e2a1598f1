"""Retry policy as pure functions: numbers in, numbers out, no sleeping.

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter") spreads retries of
many contacts evenly instead of letting them stampede together after an outage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from worker.errors import (
    ApiConfigError,
    ApiError,
    ApiRejected,
    ApiServerError,
    ApiTransportError,
    RateLimited,
)

__all__ = ["RetryPlan", "backoff_delay_s", "config_error_delay_s", "plan_retry"]


def backoff_delay_s(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter delay (s) after failed attempt number ``attempt`` (1-based).

    Uniform on [0, min(cap_s, base_s * 2 ** (attempt - 1))].
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt - 1, 0), 60))
    return rng.uniform(0.0, ceiling)


def config_error_delay_s(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """ "Equal jitter" delay for configuration errors: never shorter than half the ceiling.

    A wrong token will not fix itself in a second, so these retries stay long.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt - 1, 0), 60))
    return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """Either retry after ``delay_s`` or dead-letter with ``dead_reason``."""

    delay_s: float = 0.0
    dead_reason: str | None = None
    config_error: bool = False


def plan_retry(
    error: ApiError,
    *,
    attempt: int,
    age_s: float,
    max_retry_age_s: float,
    base_s: float,
    cap_s: float,
    config_error_base_s: float,
    rng: random.Random,
) -> RetryPlan:
    """Decide what a failed attempt leads to, from the class of the error alone.

    ``attempt`` is the number of the attempt that just failed (1-based); ``age_s`` is how
    long ago the first attempt of this change started.
    """
    if isinstance(error, ApiRejected):
        return RetryPlan(dead_reason="api_rejected")
    if age_s >= max_retry_age_s:
        return RetryPlan(
            dead_reason="retry_expired", config_error=isinstance(error, ApiConfigError)
        )
    if isinstance(error, ApiConfigError):
        delay = config_error_delay_s(
            attempt, base_s=config_error_base_s, cap_s=max(cap_s, config_error_base_s), rng=rng
        )
        return RetryPlan(delay_s=delay, config_error=True)
    delay = backoff_delay_s(attempt, base_s=base_s, cap_s=cap_s, rng=rng)
    if isinstance(error, RateLimited):
        delay = max(delay, error.retry_after_s)
    elif not isinstance(error, ApiTransportError | ApiServerError):
        raise TypeError(f"no retry policy for {type(error).__name__}")
    return RetryPlan(delay_s=delay)
