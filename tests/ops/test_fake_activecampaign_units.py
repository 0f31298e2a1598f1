"""The emulator's policies as plain functions: numbers in, numbers out, no HTTP."""

from __future__ import annotations

import pytest

from fake_activecampaign.faults import Fault, FaultConfigError, Faults
from fake_activecampaign.ratelimit import ArrivalWindow, limit_header, retry_after_header
from fake_activecampaign.schema import (
    EMAIL_INVALID,
    EMAIL_MISSING,
    BadSyncBody,
    email_problem,
    ignored_attributes,
    parse_contact,
)


def test_window_admits_up_to_the_limit_then_refuses() -> None:
    """Three arrivals fill a limit of 3; the fourth gets the time until the oldest expires."""
    window = ArrivalWindow(3)
    admitted = [window.try_admit(t) for t in (0.0, 0.1, 0.2)]

    refused = window.try_admit(0.5)

    assert [a.remaining for a in admitted] == [2, 1, 0]
    assert not refused.admitted
    assert refused.retry_after_s == pytest.approx(0.5)
    assert window.peak() == 3


def test_window_slot_frees_exactly_one_second_after_arrival() -> None:
    """An arrival at t leaves the window at t + 1.0 s."""
    window = ArrivalWindow(1)
    window.try_admit(10.0)

    assert not window.try_admit(10.999).admitted
    assert window.try_admit(11.0).admitted


def test_refused_arrivals_are_not_recorded() -> None:
    """Refusals do not push the window out: the slot frees on time despite retries."""
    window = ArrivalWindow(1)
    window.try_admit(0.0)
    for t in (0.2, 0.4, 0.6, 0.8):
        assert not window.try_admit(t).admitted

    assert window.try_admit(1.0).admitted
    assert window.peak() == 1


def test_recorded_faults_count_and_can_overfill_the_window() -> None:
    """record() counts an arrival answered anyway; retry waits for enough expiries."""
    window = ArrivalWindow(2)
    for t in (0.0, 0.1, 0.2):
        window.record(t)

    refused = window.try_admit(0.3)

    assert refused.retry_after_s == pytest.approx(0.8)  # the second arrival must leave
    assert window.peak() == 3


def test_disabled_window_admits_everything_but_tracks_peak() -> None:
    """limit 0 admits every arrival and still reports the busiest second."""
    window = ArrivalWindow(0)
    assert all(window.try_admit(t / 100).admitted for t in range(50))
    assert window.peak() == 50


def test_out_of_order_timestamps_are_clamped() -> None:
    """A timestamp slightly older than the last one is treated as simultaneous."""
    window = ArrivalWindow(2)
    window.try_admit(5.0)
    window.try_admit(4.9999)
    assert window.try_admit(5.99995).admitted is False
    assert window.try_admit(6.0).admitted


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (7.5, "8")]
)
def test_retry_after_header_rounds_up_to_at_least_one(seconds: float, header: str) -> None:
    """Retry-After is whole seconds, rounded up, never 0."""
    assert retry_after_header(seconds) == header


def test_limit_header_drops_trailing_zeroes() -> None:
    """RateLimit-Limit prints 5.0 as "5"."""
    assert (limit_header(5.0), limit_header(2.5)) == ("5", "2.5")


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("jondoe@example.com", None),
        ("first.last+tag@sub.example.co.uk", None),
        (None, EMAIL_MISSING),
        ("", EMAIL_MISSING),
        ("jondoe", EMAIL_INVALID),
        ("jon@doe@example.com", EMAIL_INVALID),
        ("jon doe@example.com", EMAIL_INVALID),
        ("jon\t@example.com", EMAIL_INVALID),
        ("jon@localhost", EMAIL_INVALID),
        ("jon@example..com", EMAIL_INVALID),
        ('"jon"@example.com', EMAIL_INVALID),
        ("x" * 243 + "@example.com", None),  # 255 characters, the maximum
        ("x" * 244 + "@example.com", EMAIL_INVALID),
        (["jon@example.com"], EMAIL_INVALID),
    ],
)
def test_email_problem(email: object, problem: object) -> None:
    """Email checks: one "@", a dotted domain, no spaces or quotes, at most 255 characters."""
    assert email_problem(email) == problem


def test_parse_contact_keeps_only_sent_attributes() -> None:
    """Absent attributes stay absent; numbers become text; the last value per field wins."""
    sync = parse_contact(
        {
            "email": "a@example.com",
            "phone": 7223224241,
            "fieldValues": [{"field": 1, "value": "a"}, {"field": "1", "value": "b"}],
        }
    )
    assert sync.attributes == {"phone": "7223224241"}
    assert sync.field_values == (("1", "b"),)


@pytest.mark.parametrize(
    "contact",
    [
        {"email": "a@example.com", "fieldValues": "1=x"},
        {"email": "a@example.com", "fieldValues": [["1", "x"]]},
        {"email": "a@example.com", "fieldValues": [{"field": ""}]},
        {"email": "a@example.com", "lastName": ["Doe"]},
    ],
)
def test_parse_contact_rejects_unusable_types(contact: dict[str, object]) -> None:
    """Structurally wrong attributes are a bad request, not silently dropped."""
    with pytest.raises(BadSyncBody):
        parse_contact(contact)


def test_ignored_attributes_lists_undocumented_keys() -> None:
    """Deprecated orgid/deleted and unknown keys are reported; documented ones are not."""
    contact = {"email": "a", "firstName": "", "orgid": "1", "deleted": "0", "x": 1}
    assert ignored_attributes(contact) == ("deleted", "orgid", "x")


class _Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_outage_ends_after_its_seconds() -> None:
    """An outage lasts `seconds` from when it was set, then clears itself."""
    clock = _Clock()
    faults = Faults(clock=clock)
    faults.update({"outage": {"mode": "reset", "seconds": 5}})

    assert faults.decide(104.9) == Fault("reset")
    assert faults.decide(105.0) is None
    assert faults.snapshot()["outage"] is None


def test_force_status_wins_over_outage_and_error_rate() -> None:
    """force_status is counted and takes precedence, so forced answers are exact."""
    faults = Faults(error_rate=1.0, seed=1)
    faults.update({"outage": {"mode": "hang"}, "force_status": {"status": 402, "count": 1}})

    assert faults.decide(0.0) == Fault("status", 402)
    assert faults.decide(0.0) == Fault("hang")


def test_error_rate_sequence_depends_only_on_the_seed() -> None:
    """The same seed gives the same failures; reset() replays them."""
    faults = Faults(error_rate=0.3, seed=42)
    first = [faults.decide(0.0) is not None for _ in range(50)]
    faults.reset()
    assert [faults.decide(0.0) is not None for _ in range(50)] == first
    assert 5 < sum(first) < 25


@pytest.mark.parametrize(
    "changes",
    [
        {"latency_ms": -1},
        {"latency_ms": float("nan")},
        {"error_rate": True},
        {"hang_s": "30"},
        {"force_status": {"status": 503, "count": 0}},
        {"force_status": {"status": 429, "retry_after": "1\r\nX: y"}},
        {"clear": "yes"},
    ],
)
def test_invalid_fault_settings_raise(changes: dict[str, object]) -> None:
    """Bad values raise FaultConfigError and leave the settings as they were."""
    faults = Faults(latency_ms=5)
    with pytest.raises(FaultConfigError):
        faults.update(changes)
    assert faults.latency_s() == pytest.approx(0.005)


def test_clear_then_merge_in_one_update() -> None:
    """{"clear": true, ...} switches everything off, then applies the other keys."""
    faults = Faults(latency_ms=50, error_rate=0.5)
    faults.update({"clear": True, "hang_s": 1})
    snapshot = faults.snapshot()
    assert (snapshot["latency_ms"], snapshot["error_rate"], snapshot["hang_s"]) == (0, 0, 1)
