"""worker.bulk_api: how bulk_import's and import/info's answers are read, against a fake
client that answers or raises what worker.client would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from worker.bulk_api import BulkRateLimited, BulkRefused, ImportInfo, import_info, submit
from worker.client import raise_for_status
from worker.errors import (
    ApiRejected,
    ApiServerError,
    ApiStatusError,
    ApiTransportError,
    RateLimited,
)

CONTACTS = [{"email": "a@example.com", "first_name": "A"}, {"email": "b@example.com"}]


class FakeClient:
    """Stands in for ActiveCampaignClient.call: records each call, then returns ``answer``
    or raises it."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def call(self, method: str, path: str, **options: Any) -> Any:
        self.calls.append((method, path, options))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def api_error(status: int, body: Any) -> ApiStatusError:
    """The exception worker.client raises for this answer (through raise_for_status)."""
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps(body).encode()
    try:
        raise_for_status(response)
    except ApiStatusError as error:
        return error
    raise AssertionError(f"raise_for_status let HTTP {status} through")


def fake_client(answer: Any) -> Any:
    """A FakeClient, typed as the ActiveCampaignClient it stands in for."""
    return FakeClient(answer)


def submitting(answer: Any) -> Callable[[], str]:
    client = fake_client(answer)
    return lambda: submit(client, CONTACTS)


def test_submit_posts_the_contacts_and_returns_the_batch_id() -> None:
    """POST /api/3/import/bulk_import with {"contacts": [...]}; the answer's batchId is returned."""
    client = fake_client({"success": 1, "queued_contacts": 2, "batchId": "b-1", "message": "ok"})
    assert submit(client, CONTACTS) == "b-1"
    assert client.calls == [("POST", "/api/3/import/bulk_import", {"json": {"contacts": CONTACTS}})]


@pytest.mark.parametrize("body", [{"success": 1, "message": "queued"}, {"batchId": ""}, None, []])
def test_an_acceptance_without_a_batch_id_is_a_transport_error(body: Any) -> None:
    """Accepted without a batchId (or not even a JSON object) cannot be polled: retryable."""
    with pytest.raises(ApiTransportError, match="batchId"):
        submitting(body)()


def test_the_bulk_rate_limit_400_is_bulk_rate_limited() -> None:
    """HTTP 400 "Rate limit exceeded." raises BulkRateLimited, not a rejection."""
    error = api_error(400, {"success": 0, "message": "Rate limit exceeded.", "failureReasons": []})
    assert isinstance(error, ApiRejected)
    with pytest.raises(BulkRateLimited):
        submitting(error)()


def test_a_validation_failure_names_the_refused_contacts_by_index() -> None:
    """failureReasons' contact indices and reasons (cut to 200 characters) come back; entries that name no integer index are skipped."""
    error = api_error(
        400,
        {
            "success": 0,
            "message": "Contact validation failed.",
            "failureReasons": [
                {"contact": 1, "failureReason": "Email address is not valid."},
                {"contact": "0", "failureReason": "not an index"},
                "junk",
                {"contact": 4, "failureReason": "x" * 500},
                {"contact": 7},
            ],
        },
    )
    with pytest.raises(BulkRefused) as refused:
        submitting(error)()
    assert refused.value.indices == [1, 4, 7]
    assert refused.value.reasons == [
        "Email address is not valid.",
        "x" * 200,
        "Contact validation failed.",  # no failureReason: the message stands in
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"success": 0, "message": "No contacts to import.", "failureReasons": []},
        {"success": 0, "message": "Request size exceeds the limit of 399999 bytes."},
        "not json object",
    ],
)
def test_a_400_that_names_no_contact_is_raised_as_it_came(body: Any) -> None:
    """A refusal of the whole request (no contact index) is the ApiRejected itself."""
    error = api_error(400, body)
    with pytest.raises(ApiRejected) as raised:
        submitting(error)()
    assert raised.value is error


@pytest.mark.parametrize(
    "error",
    [
        ApiRejected(422, ["Unprocessable"], body={"message": "Rate limit exceeded."}),
        ApiServerError(503, ["down"]),
        RateLimited(2.0),
        ApiTransportError("timeout"),
    ],
)
def test_other_errors_pass_through_untouched(error: Exception) -> None:
    """Only a 400 is read as bulk import's own refusal; a 422 that mentions the rate limit, a 5xx, a 429 or a transport error is raised unchanged."""
    with pytest.raises(type(error)) as raised:
        submitting(error)()
    assert raised.value is error


def test_import_info_asks_for_the_batch() -> None:
    """GET /api/3/import/info?batchId=ID."""
    client = fake_client({"status": "completed", "success": ["1"], "failure": []})
    assert import_info(client, "b-7") == ImportInfo("completed", [])
    assert client.calls == [("GET", "/api/3/import/info", {"params": {"batchId": "b-7"}})]


@pytest.mark.parametrize(
    "body",
    [
        {"status": False},
        {"status": None},
        {},
        {"status": "waiting", "success": [], "failure": []},
        {"status": "claimed", "success": [], "failure": []},
        {"status": "active", "success": ["1"], "failure": ["a@example.com"]},
    ],
)
def test_import_info_before_the_end_is_pending(body: dict[str, Any]) -> None:
    """false (right after submitting), no status, waiting, claimed and active are all pending."""
    assert import_info(fake_client(body), "b") == ImportInfo("pending")


@pytest.mark.parametrize("status", ["completed", "failed", "interrupted"])
def test_import_info_at_the_end_gives_the_status_and_the_failed_emails(status: str) -> None:
    """The three final statuses come back with the failure emails; non-text items are dropped."""
    body = {"status": status, "success": ["1", "2"], "failure": ["b@example.com", 7, None]}
    info = import_info(fake_client(body), "b")
    assert info == ImportInfo(status, ["b@example.com"])


def test_import_info_with_no_failure_list_has_no_failures() -> None:
    """A final answer without ``failure`` (or with null) confirms every email."""
    for body in ({"status": "completed"}, {"status": "completed", "failure": None}):
        assert import_info(fake_client(body), "b") == ImportInfo("completed", [])


@pytest.mark.parametrize("body", [{"status": "exploded"}, {"status": 1}, None, ["completed"]])
def test_an_unreadable_import_info_is_a_transport_error(body: Any) -> None:
    """An unknown status, or an answer that is not a JSON object, raises ApiTransportError (the poll is retried) rather than being taken as done."""
    with pytest.raises(ApiTransportError):
        import_info(fake_client(body), "b")
