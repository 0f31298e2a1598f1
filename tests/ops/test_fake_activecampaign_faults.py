"""Rate limiting and injected faults, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.ops.helpers import SYNC_PATH, ApiSession

StartEmulator = Callable[..., FakeActiveCampaign]
OpenApi = Callable[..., ApiSession]


def _statuses(api: ApiSession, count: int) -> list[int]:
    return [api.sync({"email": f"user{n}@example.com"}).status_code for n in range(count)]


def test_rate_limit_answers_429_with_retry_after(
    start_emulator: StartEmulator, open_api: OpenApi
) -> None:
    """Past `rate_limit` arrivals in one second: 429, Retry-After >= 1, RateLimit headers."""
    emulator = start_emulator(rate_limit=3)
    api = open_api(emulator.url)

    answers = [api.sync({"email": f"user{n}@example.com"}) for n in range(4)]

    assert [r.status_code for r in answers] == [201, 201, 201, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert {r.headers["RateLimit-Limit"] for r in answers} == {"3"}
    limited = answers[-1]
    assert limited.json() == {"message": "Too Many Requests"}
    assert limited.headers["Retry-After"] == "1"
    with EmulatorClient(emulator.url) as admin:
        stats = admin.stats()
        assert len(admin.contacts()) == 3
    assert stats["rate_limited"] == 1
    assert stats["max_per_second"] == 3
    assert stats["by_status"] == {"201": 3, "429": 1}


def test_rate_limit_is_shared_by_every_path_and_token(
    start_emulator: StartEmulator, open_api: OpenApi
) -> None:
    """All /api/3/ requests share one per-account window, whatever their token or path."""
    emulator = start_emulator(rate_limit=2)
    good, bad = open_api(emulator.url), open_api(emulator.url, token="wrong")

    assert good.get("/api/3/fields").status_code == 200
    assert bad.get("/api/3/fields").status_code == 403
    assert good.sync({"email": "a@example.com"}).status_code == 429


def test_429_answers_do_not_consume_the_window(
    start_emulator: StartEmulator, open_api: OpenApi
) -> None:
    """Retrying into a full window is refused but does not extend it: max_per_second stays."""
    emulator = start_emulator(rate_limit=2)
    api = open_api(emulator.url)

    statuses = _statuses(api, 10)

    assert statuses == [201, 201] + [429] * 8
    with EmulatorClient(emulator.url) as admin:
        stats = admin.stats()
    assert (stats["max_per_second"], stats["rate_limited"]) == (2, 8)


def test_rate_limit_zero_disables_limit_and_headers(api: ApiSession, admin: EmulatorClient) -> None:
    """rate_limit=0 never answers 429 and sends no RateLimit headers; the peak is still kept."""
    answers = [api.sync({"email": f"user{n}@example.com"}) for n in range(15)]

    assert {r.status_code for r in answers} == {201}
    assert not any("RateLimit-Limit" in r.headers for r in answers)
    assert admin.stats()["max_per_second"] >= 2


def test_forced_status_applies_to_the_next_count_requests(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """force_status with a count answers exactly that many requests, then normal service."""
    admin.set_faults(force_status={"status": 500, "count": 2})

    assert _statuses(api, 3) == [500, 500, 201]
    assert admin.faults()["force_status"] is None


def test_forced_status_without_count_lasts_until_cleared(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """force_status with count null answers every request until the faults are cleared."""
    admin.set_faults(force_status={"status": 503, "count": None})
    assert _statuses(api, 3) == [503, 503, 503]

    admin.clear_faults()

    assert _statuses(api, 1) == [201]


def test_forced_422_uses_the_documented_shape(api: ApiSession, admin: EmulatorClient) -> None:
    """A forced 422 carries the documented errors body."""
    admin.set_faults(force_status={"status": 422})

    response = api.sync({"email": "a@example.com"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "email_invalid"


@pytest.mark.parametrize("retry_after", ["2", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_forced_429_sends_the_given_retry_after(
    start_emulator: StartEmulator, open_api: OpenApi, retry_after: str
) -> None:
    """A forced 429 sends Retry-After as given (seconds or HTTP-date) and uses no window slot."""
    emulator = start_emulator(rate_limit=2)
    api = open_api(emulator.url)
    with EmulatorClient(emulator.url) as admin:
        admin.set_faults(force_status={"status": 429, "count": 2, "retry_after": retry_after})

        answers = [api.sync({"email": f"user{n}@example.com"}) for n in range(4)]

        assert [r.status_code for r in answers] == [429, 429, 201, 201]
        assert answers[0].headers["Retry-After"] == retry_after
        assert answers[0].headers["RateLimit-Remaining"] == "0"
        assert admin.stats()["rate_limited"] == 2
        assert admin.stats()["max_per_second"] == 2


def test_forced_429_retry_after_can_be_omitted(api: ApiSession, admin: EmulatorClient) -> None:
    """retry_after null forces a bare 429, to test clients against a missing header."""
    admin.set_faults(force_status={"status": 429, "retry_after": None})

    response = api.sync({"email": "a@example.com"})

    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_outage_503_answers_every_request_until_cleared(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """An outage in "503" mode answers 503 Service Unavailable and stores nothing."""
    admin.set_faults(outage={"mode": "503", "seconds": 60})

    response = api.sync({"email": "a@example.com"})

    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}
    assert admin.contacts() == {}
    admin.set_faults(outage=None)
    assert _statuses(api, 1) == [201]


def test_outage_hang_outlasts_the_client_timeout(api: ApiSession, admin: EmulatorClient) -> None:
    """An outage in "hang" mode holds the answer for hang_s, so a shorter read timeout fires."""
    admin.set_faults(outage={"mode": "hang", "seconds": 60}, hang_s=1.0)

    with pytest.raises(requests.ReadTimeout):
        api.sync({"email": "a@example.com"}, timeout=0.2)


def test_outage_hang_answers_503_and_closes_after_hang_s(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """A patient client gets 503 with Connection: close once hang_s has passed."""
    admin.set_faults(outage={"mode": "hang", "seconds": 60}, hang_s=0.3)

    started = time.monotonic()
    response = api.sync({"email": "a@example.com"})

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 503
    assert response.headers["Connection"] == "close"
    assert admin.contacts() == {}
    assert admin.stats()["max_in_flight_per_email"] == 1


def test_outage_reset_closes_without_an_answer(api: ApiSession, admin: EmulatorClient) -> None:
    """An outage in "reset" mode drops the connection; the log records status 0."""
    admin.set_faults(outage={"mode": "reset", "seconds": 60})

    with pytest.raises(requests.ConnectionError):
        api.sync({"email": "a@example.com"})

    assert [entry["status"] for entry in admin.requests_log()] == [0]
    admin.clear_faults()
    assert _statuses(api, 1) == [201]


def test_error_rate_with_a_seed_is_reproducible(
    start_emulator: StartEmulator, open_api: OpenApi
) -> None:
    """error_rate answers that fraction 503; the same seed gives the same sequence."""
    runs = []
    for _ in range(2):
        emulator = start_emulator(rate_limit=0, error_rate=0.5, seed=7)
        runs.append(_statuses(open_api(emulator.url), 30))

    assert runs[0] == runs[1]
    assert set(runs[0]) == {201, 503}


def test_error_rate_set_at_runtime(api: ApiSession, admin: EmulatorClient) -> None:
    """error_rate 1.0 through the admin API fails every request."""
    admin.set_faults(error_rate=1.0)
    assert _statuses(api, 3) == [503, 503, 503]


def test_latency_delays_every_api_answer(start_emulator: StartEmulator, open_api: OpenApi) -> None:
    """latency_ms is added before the answer."""
    emulator = start_emulator(rate_limit=0, latency_ms=200)
    api = open_api(emulator.url)

    started = time.monotonic()
    assert api.get("/api/3/fields").status_code == 200

    assert time.monotonic() - started >= 0.2


def test_arrivals_are_counted_before_latency(
    start_emulator: StartEmulator, open_api: OpenApi
) -> None:
    """With latency, the limit still counts arrival times: a paced burst still gets 429."""
    emulator = start_emulator(rate_limit=2, latency_ms=100)
    api = open_api(emulator.url)

    assert _statuses(api, 3) == [201, 201, 429]


def test_stop_ends_hung_requests(start_emulator: StartEmulator, open_api: OpenApi) -> None:
    """stop() returns promptly even while a request hangs, and the client sees an error."""
    emulator = start_emulator(rate_limit=0)
    api = open_api(emulator.url)
    with EmulatorClient(emulator.url) as admin:
        admin.set_faults(outage={"mode": "hang", "seconds": None})
    with pytest.raises(requests.ReadTimeout):
        api.sync({"email": "a@example.com"}, timeout=0.2)

    started = time.monotonic()
    emulator.stop()

    assert time.monotonic() - started < 2.0
    with pytest.raises(requests.ConnectionError):
        api.get("/api/3/fields", timeout=1)


def test_delay_after_store_holds_the_answer_after_the_contact_is_stored(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """delay_after_store_ms stores and logs the sync as 201, then holds the answer that long."""
    admin.set_faults(delay_after_store_ms=500)

    with pytest.raises(requests.ReadTimeout):
        api.sync({"email": "a@example.com", "firstName": "A"}, timeout=0.2)

    assert admin.contacts()["a@example.com"]["firstName"] == "A"
    assert [entry["status"] for entry in admin.requests_log()] == [201]
    started = time.monotonic()
    assert api.sync({"email": "b@example.com"}).status_code == 201
    assert time.monotonic() - started >= 0.5
    assert admin.clear_faults()["delay_after_store_ms"] == 0


def test_faults_snapshot_reflects_settings(admin: EmulatorClient) -> None:
    """GET /_emulator/faults reports the settings in force, merged key by key."""
    admin.set_faults(latency_ms=10)
    snapshot = admin.set_faults(outage={"mode": "503", "seconds": None}, reject_emails=["x"])

    assert snapshot["latency_ms"] == 10
    assert snapshot["outage"] == {"mode": "503", "seconds": None}
    assert snapshot["reject_emails"] == ["x"]
    assert admin.clear_faults()["latency_ms"] == 0


def test_admin_traffic_is_not_rate_limited(start_emulator: StartEmulator) -> None:
    """/_emulator/ calls neither count toward nor obey the API rate limit."""
    emulator = start_emulator(rate_limit=1)
    with EmulatorClient(emulator.url) as admin:
        for _ in range(5):
            admin.stats()
        assert admin.stats()["requests_total"] == 0


def test_sync_path_log_has_no_admin_entries(api: ApiSession, admin: EmulatorClient) -> None:
    """Fault changes are not client traffic and are not logged."""
    admin.set_faults(latency_ms=0)
    api.sync({"email": "a@example.com"})
    assert [entry["path"] for entry in admin.requests_log()] == [SYNC_PATH]
