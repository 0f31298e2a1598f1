"""Bulk import: submit, asynchronous processing, import/info, limits, validation and faults."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient, FakeActiveCampaign, main
from tests.ops.helpers import ApiSession

BULK = "/api/3/import/bulk_import"
INFO = "/api/3/import/info"
FINISHED = ("completed", "failed", "interrupted")
RATE_LIMITED = {"success": 0, "message": "Rate limit exceeded.", "failureReasons": []}
POLL_TIMEOUT_S = 5.0


@pytest.fixture
def fast(admin: EmulatorClient) -> EmulatorClient:
    """The admin client of an emulator whose bulk imports start and run at once."""
    admin.set_bulk(speed_per_s=100_000, status_false_s=0)
    return admin


def _submit(api: ApiSession, *contacts: dict[str, Any]) -> str:
    response = api.post(BULK, json={"contacts": list(contacts)})
    assert response.status_code == 200, response.text
    return str(response.json()["batchId"])


def _info(api: ApiSession, batch_id: str) -> dict[str, Any]:
    response = api.get(INFO, params={"batchId": batch_id})
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()
    return info


def _poll_info(
    api: ApiSession, batch_id: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        info = _info(api, batch_id)
        if until(info):
            return info
        assert time.monotonic() < deadline, f"import/info never got there: {info}"
        time.sleep(0.005)


def _finished(api: ApiSession, batch_id: str) -> dict[str, Any]:
    return _poll_info(api, batch_id, lambda info: info["status"] in FINISHED)


def _contacts(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"email": f"{prefix}{i}@example.com"} for i in range(count)]


def test_accepted_batch_applies_every_attribute(api: ApiSession, fast: EmulatorClient) -> None:
    """200 with the documented body; once completed, the contacts carry names, phone, field
    values, tags (created when missing), list statuses and the account (created once)."""
    fast.define_lists("Newsletter", "Promotions")
    fast.define_tags("Existing")
    contact = {
        "first_name": "Jon",
        "last_name": "Doe",
        "phone": "555",
        "customer_acct_name": "Acme Inc",
        "tags": ["existing", "Brand new"],
        "fields": [{"id": 6, "value": "2024-01-02"}, {"id": "1", "value": "text"}],
        "subscribe": [{"listid": 1}],
        "unsubscribe": [{"listid": "2"}],
    }
    body = {
        "contacts": [
            {"email": "Jon@Example.com", **contact},
            {"email": "ann@example.com", **contact},
        ],
        "callback": {"url": "https://example.com/hook", "requestType": "POST"},
    }

    response = api.post(BULK, json=body)

    answer = response.json()
    assert response.status_code == 200
    assert answer == {
        "success": 1,
        "queued_contacts": 2,
        "batchId": answer["batchId"],
        "message": "Contact import queued",
    }
    assert uuid.UUID(answer["batchId"])
    info = _finished(api, answer["batchId"])
    stored = fast.contacts()
    assert info == {
        "status": "completed",
        "success": [stored["jon@example.com"]["id"], stored["ann@example.com"]["id"]],
        "failure": [],
    }
    jon = stored["jon@example.com"]
    assert (jon["email"], jon["firstName"], jon["lastName"], jon["phone"]) == (
        "Jon@Example.com",
        "Jon",
        "Doe",
        "555",
    )
    assert jon["fieldValues"] == {"6": "2024-01-02", "1": "text"}
    assert jon["tags"] == ["Brand new", "Existing"]
    assert jon["lists"] == {"1": 1, "2": 2}
    assert jon["account"] == stored["ann@example.com"]["account"] == "Acme Inc"
    assert [tag["tag"] for tag in fast.tags()] == ["Existing", "Brand new"]
    assert fast.accounts() == [{"id": "1", "name": "Acme Inc"}]
    assert (fast.stats()["created"], fast.stats()["ignored_attributes"]) == (2, 0)


def test_status_is_false_then_waiting_and_a_paused_queue_applies_nothing(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """import/info is exactly {"status": false} during status_false_s, then "waiting" while
    paused; on resume the visible batch completes while the other is still false."""
    admin.set_bulk(paused=True, status_false_s=60, speed_per_s=100_000)
    hidden = _submit(api, {"email": "hidden@example.com"})
    admin.set_bulk(status_false_s=0)
    visible = _submit(api, {"email": "visible@example.com"})

    assert _info(api, hidden) == {"status": False}
    assert _info(api, visible) == {"status": "waiting", "success": [], "failure": []}
    assert admin.contacts() == {}

    admin.resume_bulk()

    assert _finished(api, visible)["status"] == "completed"
    assert _info(api, hidden) == {"status": False}
    assert list(admin.contacts()) == ["visible@example.com"]
    assert [b["status"] for b in admin.bulk_batches()] == [False, "completed"]


def test_a_slow_batch_is_claimed_then_active_with_partial_results(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """At 2 contacts/s a batch shows "claimed" (nothing processed yet), then "active" with
    some successes, and completes once the speed goes up."""
    admin.set_bulk(speed_per_s=2, status_false_s=0)
    batch_id = _submit(api, *_contacts("slow", 3))

    claimed = _poll_info(api, batch_id, lambda info: info["status"] != "waiting")
    active = _poll_info(api, batch_id, lambda info: info["status"] == "active")
    admin.set_bulk_speed(100_000)
    done = _finished(api, batch_id)

    assert claimed == {"status": "claimed", "success": [], "failure": []}
    assert 1 <= len(active["success"]) < 3
    assert done["status"] == "completed"
    assert len(done["success"]) == 3


def test_speed_paces_the_importer(api: ApiSession, admin: EmulatorClient) -> None:
    """200 contacts at 400/s take about half a second from claim to finish."""
    admin.set_bulk(speed_per_s=400, status_false_s=0)
    batch_id = _submit(api, *_contacts("paced", 200))

    _finished(api, batch_id)

    batch = admin.bulk_batch(batch_id)
    assert batch is not None
    elapsed_s = batch["finished_at"] - batch["claimed_at"]
    assert 0.45 <= elapsed_s < 3.0
    assert (batch["processed"], batch["succeeded"], len(batch["success"])) == (200, 200, 200)


def test_invalid_contacts_refuse_the_request_and_queue_nothing(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """A 400 lists each bad contact by index; the valid ones are not queued either."""
    contacts = [
        {"email": "good@example.com"},
        {"first_name": "No email"},
        {"email": "not-an-email"},
        {"email": "tags@example.com", "tags": "a,b"},
        {"email": "lists@example.com", "subscribe": [2]},
        "not an object",
    ]

    response = api.post(BULK, json={"contacts": contacts})

    body = response.json()
    assert response.status_code == 400
    assert body["success"] == 0
    assert isinstance(body["message"], str)
    assert [(r["contact"], r["failureReason"]) for r in body["failureReasons"]] == [
        (1, "Contact Email is required"),
        (2, "Email address is not valid."),
        (3, "tags must be a list of tag names."),
        (4, 'subscribe must be a list of {"listid": N}.'),
        (5, "The contact must be an object."),
    ]
    assert fast.bulk_batches() == []
    assert fast.contact("good@example.com") is None
    assert fast.bulk_stats()["requests_refused"] == 1


def test_request_level_refusals_and_the_exact_byte_limit(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """A body without a contacts list, an empty one, 251 contacts and 400,000 bytes are
    refused with failureReasons []; 250 contacts and 399,999 bytes exactly are accepted."""

    def sized(total_bytes: int) -> bytes:
        frame = json.dumps({"contacts": [{"email": "big@example.com", "last_name": ""}]})
        padding = "x" * (total_bytes - len(frame))
        body = frame.replace('"last_name": ""', f'"last_name": "{padding}"').encode()
        assert len(body) == total_bytes
        return body

    def post_raw(body: bytes) -> Any:
        return api.post(BULK, data=body, headers={"Content-Type": "application/json"})

    refused = [
        api.post(BULK, json={"contact": {"email": "a@example.com"}}),
        api.post(BULK, json={"contacts": []}),
        api.post(BULK, json={"contacts": _contacts("many", 251)}),
        post_raw(sized(400_000)),
    ]
    accepted = [
        api.post(BULK, json={"contacts": _contacts("max", 250)}),
        post_raw(sized(399_999)),
    ]

    for response in refused:
        assert response.status_code == 400
        assert response.json()["success"] == 0
        assert response.json()["failureReasons"] == []
    assert [r.json()["queued_contacts"] for r in accepted] == [250, 1]
    assert fast.bulk_stats()["contacts_queued"] == 251


def test_bulk_rate_limit_is_a_400_per_minute_for_multi_and_single_requests(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """Defaults are 100/min (multi) and 20/min (single), counted apart; over them, the 400
    "Rate limit exceeded." without touching the 429 count."""
    assert fast.bulk_settings()["multi_per_minute"] == 100
    assert fast.bulk_settings()["single_per_minute"] == 20
    fast.set_bulk(multi_per_minute=2, single_per_minute=1)

    multi = [api.post(BULK, json={"contacts": _contacts(f"m{i}-", 2)}) for i in range(3)]
    single = [api.post(BULK, json={"contacts": _contacts(f"s{i}-", 1)}) for i in range(2)]

    assert [r.status_code for r in multi] == [200, 200, 400]
    assert [r.status_code for r in single] == [200, 400]
    assert multi[2].json() == single[1].json() == RATE_LIMITED
    assert fast.bulk_stats()["rate_limited"] == 2
    assert fast.stats()["rate_limited"] == 0
    assert len(fast.bulk_batches()) == 3


def test_bulk_import_skips_the_5_per_second_window_but_import_info_counts(
    start_emulator: Callable[..., FakeActiveCampaign], open_api: Callable[..., ApiSession]
) -> None:
    """With a 1/s account limit, bulk posts leave the window alone; import/info uses it."""
    emulator = start_emulator(rate_limit=1)
    api = open_api(emulator.url)

    batch_ids = [_submit(api, *_contacts(f"w{i}-", 2)) for i in range(3)]
    first = api.get(INFO, params={"batchId": batch_ids[0]})
    second = api.get(INFO, params={"batchId": batch_ids[1]})

    assert first.status_code == 200
    assert second.status_code == 429
    assert "Retry-After" in second.headers


def test_forced_bulk_rate_limit_refuses_the_next_requests(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """force_bulk_rate_limit(2): the next two bulk posts get the 400, the third is queued."""
    assert fast.force_bulk_rate_limit(2)["force_rate_limit"] == 2

    answers = [api.post(BULK, json={"contacts": _contacts(f"f{i}-", 1)}) for i in range(3)]

    assert [a.status_code for a in answers] == [400, 400, 200]
    assert answers[0].json() == RATE_LIMITED
    assert fast.bulk_settings()["force_rate_limit"] == 0


def test_fail_emails_land_in_failure_and_are_not_stored(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """A contact matching fail_emails is listed by email under failure; the rest succeed."""
    fast.set_bulk(fail_emails=[r"@bounce\.test$"])
    batch_id = _submit(
        api, {"email": "a@example.com"}, {"email": "x@BOUNCE.test"}, {"email": "b@example.com"}
    )

    info = _finished(api, batch_id)

    assert info["status"] == "completed"
    assert info["failure"] == ["x@BOUNCE.test"]
    assert len(info["success"]) == 2
    assert sorted(fast.contacts()) == ["a@example.com", "b@example.com"]
    assert fast.bulk_stats()["contacts_failed"] == 1


def test_forced_fates_fail_or_interrupt_the_next_batches(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """ "failed" applies nothing; "interrupted" after 2 applies exactly the first 2; the
    batch after them completes."""
    fast.fail_next_batches(1, status="failed")
    failed = _submit(api, *_contacts("failed", 3))
    assert _finished(api, failed) == {"status": "failed", "success": [], "failure": []}

    fast.fail_next_batches(1, status="interrupted", after=2)
    interrupted = _finished(api, _submit(api, *_contacts("cut", 5)))
    completed = _finished(api, _submit(api, *_contacts("whole", 1)))

    assert interrupted["status"] == "interrupted"
    assert len(interrupted["success"]) == 2
    assert completed["status"] == "completed"
    assert sorted(fast.contacts()) == ["cut0@example.com", "cut1@example.com", "whole0@example.com"]
    stats = fast.bulk_stats()
    assert (stats["batches_failed"], stats["batches_interrupted"]) == (1, 1)
    assert fast.bulk_settings()["next_batches"] is None


def test_blank_values_overwrite_tags_stay_and_the_account_moves(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """A blank first_name overwrites, an absent phone is kept, tags are only ever added, a
    blank account name changes nothing and a new one moves the contact."""
    first = {
        "email": "jon@example.com",
        "first_name": "Jon",
        "phone": "555",
        "tags": ["a"],
        "customer_acct_name": "Old Co",
    }
    _finished(api, _submit(api, first))
    _finished(api, _submit(api, {"email": "jon@example.com", "customer_acct_name": ""}))
    assert fast.contact("jon@example.com")["account"] == "Old Co"  # type: ignore[index]

    second = {
        "email": "jon@example.com",
        "first_name": "",
        "tags": ["b"],
        "customer_acct_name": "New Co",
    }
    _finished(api, _submit(api, second))

    jon = fast.contact("jon@example.com")
    assert jon is not None
    assert (jon["firstName"], jon["phone"], jon["tags"], jon["account"]) == (
        "",
        "555",
        ["a", "b"],
        "New Co",
    )
    stats = fast.bulk_stats()
    assert (stats["blank_values"], stats["account_moves"]) == (2, 1)


def test_unknown_lists_are_skipped_and_resubscribing_is_counted(
    api: ApiSession, fast: EmulatorClient
) -> None:
    """A list id the account lacks is skipped and counted; unsubscribe then subscribe again
    counts as resubscribed, as through /contactLists."""
    fast.define_lists("Newsletter")
    _finished(api, _submit(api, {"email": "a@example.com", "subscribe": [{"listid": 9}]}))
    _finished(api, _submit(api, {"email": "a@example.com", "unsubscribe": [{"listid": 1}]}))
    _finished(api, _submit(api, {"email": "a@example.com", "subscribe": [{"listid": 1}]}))

    assert fast.contact("a@example.com")["lists"] == {"1": 1}  # type: ignore[index]
    assert fast.bulk_stats()["unknown_lists"] == 1
    assert fast.stats()["resubscribed"] == 1


def test_import_info_unknown_or_missing_batch_id(api: ApiSession) -> None:
    """An unknown batchId is a 404 with a message; a missing one is a 400."""
    unknown = api.get(INFO, params={"batchId": "no-such-batch"})
    missing = api.get(INFO)

    assert unknown.status_code == 404
    assert unknown.json() == {"message": "No Result found for Batch with id no-such-batch"}
    assert missing.status_code == 400


def test_request_log_stats_and_batch_inspection(api: ApiSession, fast: EmulatorClient) -> None:
    """Both routes count in by_route; the log keeps a bulk body's emails, not the body; the
    admin batch views show counts and results."""
    batch_id = _submit(api, {"email": "a@example.com", "tags": ["t"]}, {"email": "b@example.com"})
    info = _finished(api, batch_id)

    by_route = fast.stats()["by_route"]
    assert by_route[f"POST {BULK}"] == 1
    assert by_route[f"GET {INFO}"] >= 1
    assert fast.requests_log()[0]["body"] == {
        "contacts": 2,
        "emails": ["a@example.com", "b@example.com"],
    }
    [summary] = fast.wait_for_bulk([batch_id])
    assert (summary["batchId"], summary["status"], summary["contacts"]) == (
        batch_id,
        "completed",
        2,
    )
    detail = fast.bulk_batch(batch_id)
    assert detail is not None
    assert (detail["success"], detail["failure"]) == (info["success"], [])
    assert fast.bulk_batch("no-such-batch") is None


def test_gate_token_and_faults_apply_to_bulk_import(api: ApiSession, fast: EmulatorClient) -> None:
    """A wrong token is a 403 and a forced 503 is answered; neither queues anything."""
    fast.set_token("rotated")
    forbidden = api.post(BULK, json={"contacts": _contacts("t", 1)})
    fast.set_token("test-token")
    fast.set_faults(force_status={"status": 503})
    unavailable = api.post(BULK, json={"contacts": _contacts("t", 1)})

    assert (forbidden.status_code, unavailable.status_code) == (403, 503)
    assert fast.bulk_batches() == []


def test_admin_settings_validate_clear_and_reset(
    start_emulator: Callable[..., FakeActiveCampaign], open_api: Callable[..., ApiSession]
) -> None:
    """Invalid settings are refused; clear_bulk restores the constructed speed; reset()
    forgets batches and bulk settings."""
    emulator = start_emulator(rate_limit=0, bulk_speed_per_s=50)
    api = open_api(emulator.url)
    with EmulatorClient(emulator.url) as admin:
        assert admin.bulk_settings()["speed_per_s"] == 50
        refusals = {
            "speed_per_s must be > 0": {"speed_per_s": 0},
            "paused must be true or false": {"paused": "yes"},
            "unknown bulk settings: colour": {"colour": 1},
            "fail_emails: ": {"fail_emails": ["("]},
        }
        for message, bad in refusals.items():
            with pytest.raises(ValueError, match=message):
                admin.set_bulk(**bad)
        admin.set_bulk(speed_per_s=5, paused=True)
        assert admin.clear_bulk()["speed_per_s"] == 50
        assert admin.bulk_settings()["paused"] is False

        admin.pause_bulk()
        _submit(api, {"email": "a@example.com"})
        admin.reset()

        assert admin.bulk_batches() == []
        assert admin.bulk_stats()["batches_submitted"] == 0
        assert admin.bulk_settings()["paused"] is False


def test_cli_bulk_speed_flag_and_variable_are_checked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--bulk-speed 0 (or the variable set to 0) fails startup with exit code 1."""
    monkeypatch.delenv("FAKE_ACTIVECAMPAIGN_BULK_SPEED", raising=False)
    assert main(["--port", "0", "--bulk-speed", "0"]) == 1
    monkeypatch.setenv("FAKE_ACTIVECAMPAIGN_BULK_SPEED", "0")
    assert main(["--port", "0"]) == 1

    failures = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [f["event"] for f in failures] == ["fake_activecampaign.failed"] * 2
    assert all("speed_per_s" in f["error"] for f in failures)
