"""worker.timings: the timing rules that correctness depends on, and their checks."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConfigError
from worker.settings import Settings
from worker.timings import Timings


def test_defaults_follow_from_the_http_timeout() -> None:
    """At the default 10 s timeout: a 50 s lease, a 47 s task limit, 24 s of limiter wait."""
    timings = Settings().timings
    assert timings.lease_s == 50.0
    assert timings.task_time_limit_s == 47.0
    assert timings.limiter_max_wait_s == 24.0
    assert timings.pump_lock_ttl_s == 10.0
    assert timings.max_leases(5) == 10


@given(
    http_timeout_s=st.floats(min_value=0.1, max_value=120),
    extra_lease_s=st.floats(min_value=0, max_value=600),
    pump_window_s=st.floats(min_value=0.1, max_value=60),
    extra_reclaim_s=st.floats(min_value=0.01, max_value=600),
)
def test_every_accepted_combination_keeps_the_invariants(
    http_timeout_s: float, extra_lease_s: float, pump_window_s: float, extra_reclaim_s: float
) -> None:
    """Whatever derive() accepts keeps a hung sync's kill inside its lease, a normal sync inside its limit, and the pump lock beyond its window."""
    minimum_lease_s = 2 * http_timeout_s + 3 + 3 + 1
    timings = Timings.derive(
        http_timeout_s=http_timeout_s,
        lease_s=minimum_lease_s + extra_lease_s,
        pump_window_s=pump_window_s,
        reclaim_idle_s=2 * pump_window_s + extra_reclaim_s,
    )
    assert timings.task_time_limit_s <= timings.lease_s - timings.kill_margin_s
    assert (
        timings.limiter_max_wait_s + 2 * timings.http_timeout_s + timings.bookkeeping_s
        <= timings.task_time_limit_s + 1e-9
    )
    assert timings.pump_lock_ttl_s > timings.pump_window_s
    assert timings.reclaim_idle_s > timings.pump_lock_ttl_s


def test_a_lease_too_short_for_the_timeout_is_refused_naming_the_variable() -> None:
    """A lease that leaves under a second of limiter wait fails at start, saying how long it must be."""
    with pytest.raises(ConfigError, match=r"CONTACT_SYNC_LEASE_S: must be at least 27 s"):
        Settings.from_env({"CONTACT_SYNC_HTTP_TIMEOUT_S": "10", "CONTACT_SYNC_LEASE_S": "26"})
    assert Settings.from_env({"CONTACT_SYNC_LEASE_S": "27"}).timings.limiter_max_wait_s == 1.0


def test_a_reclaim_time_inside_a_pump_cycle_is_refused() -> None:
    """Reclaiming entries sooner than a pump cycle can last would rob a live pump: refused."""
    with pytest.raises(ConfigError, match="CONTACT_SYNC_RECLAIM_IDLE_S"):
        Settings.from_env({"CONTACT_SYNC_PUMP_WINDOW_S": "5", "CONTACT_SYNC_RECLAIM_IDLE_S": "10"})
    settings = Settings.from_env(
        {"CONTACT_SYNC_PUMP_WINDOW_S": "1", "CONTACT_SYNC_RECLAIM_IDLE_S": "3"}
    )
    assert settings.timings.pump_lock_ttl_s == 2.0


def test_check_refuses_a_task_limit_that_outlives_the_lease() -> None:
    """Without a kill margin the task limit reaches the lease's end: check() says so."""
    timings = dataclasses.replace(Settings().timings, kill_margin_s=0.0)
    with pytest.raises(ConfigError, match="CONTACT_SYNC_LEASE_S"):
        timings.check()


def test_check_refuses_a_lock_that_does_not_outlive_the_window() -> None:
    """A pump lock shorter than the window would let a second pump start mid-window."""

    class ShortLock(Timings):
        @property
        def pump_lock_ttl_s(self) -> float:
            return self.pump_window_s

    timings = ShortLock(http_timeout_s=10, lease_s=50, pump_window_s=5, reclaim_idle_s=15)
    with pytest.raises(ConfigError, match="CONTACT_SYNC_PUMP_WINDOW_S"):
        timings.check()


def test_short_test_timings_are_accepted() -> None:
    """The short timings the crash tests use are valid: a 2 s timeout with a 12 s lease."""
    timings = Settings.from_env(
        {
            "CONTACT_SYNC_HTTP_TIMEOUT_S": "2",
            "CONTACT_SYNC_LEASE_S": "12",
            "CONTACT_SYNC_PUMP_WINDOW_S": "1",
            "CONTACT_SYNC_RECLAIM_IDLE_S": "3",
        }
    ).timings
    assert (timings.lease_s, timings.task_time_limit_s, timings.limiter_max_wait_s) == (12, 9, 2)
