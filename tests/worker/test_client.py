"""worker.client: request shape, status classification, body parsing and token hygiene."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import json
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from worker.client import ActiveCampaignClient, error_messages, parse_retry_after_s
from worker.errors import (
    ApiConfigError,
    ApiError,
    ApiRejected,
    ApiServerError,
    ApiTransportError,
    RateLimited,
)
from worker.settings import Secret

BASE = "https://acct.api-us1.com"
SYNC_URL = f"{BASE}/api/3/contact/sync"
TOKEN = "secret-token-0123456789abcdef"
CONTACT = {"email": "jondoe@example.com", "firstName": "John", "lastName": "Doe"}

# The success body published for the sync endpoint (reference/sync-a-contact.seed.txt).
SEED_BODY: dict[str, Any] = {
    "fieldValues": [
        {
            "contact": "113",
            "field": "1",
            "value": "The Value for First Field",
            "cdate": "2020-08-01T10:54:59-05:00",
            "udate": "2020-08-01T14:13:34-05:00",
            "links": {"owner": "/api/3/fieldValues/11797/owner"},
            "id": "11797",
            "owner": "113",
        }
    ],
    "contact": {
        "email": "jondoe@example.com",
        "cdate": "2018-09-28T13:50:41-05:00",
        "udate": "2018-09-28T13:50:41-05:00",
        "orgid": "",
        "links": {"bounceLogs": "/api/3/contacts/113/bounceLogs"},
        "id": "113",
        "organization": "",
    },
}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[ActiveCampaignClient]:
    instance = ActiveCampaignClient(BASE + "/", Secret(TOKEN), timeout_s=10.0)
    yield instance
    instance.close()


def raised_by(client: ActiveCampaignClient) -> ApiError:
    with pytest.raises(ApiError) as caught:
        client.sync_contact(CONTACT)
    return caught.value


def test_request_shape(mocked: responses.RequestsMock, client: ActiveCampaignClient) -> None:
    """POST /api/3/contact/sync with {"contact": ...}, the token, a User-Agent and JSON Accept."""
    mocked.post(SYNC_URL, json=SEED_BODY, status=201)
    client.sync_contact(CONTACT)
    (call,) = mocked.calls
    request = call.request
    assert request.method == "POST"
    assert request.url == SYNC_URL
    assert json.loads(request.body or b"") == {"contact": CONTACT}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Api-Token"] == TOKEN
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("contact-sync/")


@pytest.mark.parametrize(("timeout_s", "expected"), [(10.0, (3.05, 10.0)), (2.0, (2.0, 2.0))])
def test_timeouts_are_passed(
    mocked: responses.RequestsMock, timeout_s: float, expected: tuple[float, float]
) -> None:
    """The connect timeout is at most 3.05 s and the read timeout is timeout_s."""
    mocked.post(SYNC_URL, json=SEED_BODY, status=201)
    client = ActiveCampaignClient(BASE, Secret(TOKEN), timeout_s=timeout_s)
    client.sync_contact(CONTACT)
    timeout = mocked.calls[0].request.req_kwargs["timeout"]  # type: ignore[attr-defined]
    assert tuple(timeout) == expected
    assert timeout[0] <= 3.05
    client.close()


def test_session_headers_never_hold_the_token(client: ActiveCampaignClient) -> None:
    """The token is added per request by the auth hook, never stored in session.headers."""
    assert "Api-Token" not in client.session.headers
    assert TOKEN not in repr(dict(client.session.headers))
    assert TOKEN not in repr(client.session.auth)


def test_seed_body_gives_the_contact_id(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """A 201 seed-shaped body yields the status and the contact id (a string)."""
    mocked.post(SYNC_URL, json=SEED_BODY, status=201)
    result = client.sync_contact(CONTACT)
    assert result.status == 201
    assert result.contact_id == "113"


@pytest.mark.parametrize(
    ("cdate", "udate"),
    [("2018-09-28T13:50:41-05:00", "2018-09-28T13:50:41-05:00"), ("2018", "2026")],
)
def test_result_claims_neither_created_nor_updated(
    mocked: responses.RequestsMock, client: ActiveCampaignClient, cdate: str, udate: str
) -> None:
    """Equal or differing cdate/udate say nothing documented, so the result has no action."""
    body = {"contact": {**SEED_BODY["contact"], "cdate": cdate, "udate": udate, "id": 113}}
    mocked.post(SYNC_URL, json=body, status=200)
    result = client.sync_contact(CONTACT)
    assert (result.status, result.contact_id) == (200, "113")
    assert not hasattr(result, "action")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"contact": "113"}',
        b'{"contact": {"id": null}}',
        b"[" * 50_000,
    ],
)
def test_odd_success_bodies_are_still_success(
    mocked: responses.RequestsMock, client: ActiveCampaignClient, body: bytes
) -> None:
    """A 2xx with an empty, non-JSON, deeply nested or unexpected body is a success without an id."""
    mocked.post(SYNC_URL, body=body, status=201)
    result = client.sync_contact(CONTACT)
    assert result.status == 201
    assert result.contact_id is None


def test_latency_comes_from_the_injected_clock(mocked: responses.RequestsMock) -> None:
    """latency_ms is measured with the injected clock, in milliseconds."""
    mocked.post(SYNC_URL, json=SEED_BODY, status=201)
    ticks = itertools.count(start=100.0, step=0.25)
    client = ActiveCampaignClient(BASE, Secret(TOKEN), clock=lambda: next(ticks))
    assert client.sync_contact(CONTACT).latency_ms == 250.0
    client.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), (None, 1.0), ("soon", 1.0), ("", 1.0), ("99999", 3600.0)],
)
def test_429_becomes_rate_limited(
    mocked: responses.RequestsMock,
    client: ActiveCampaignClient,
    header: str | None,
    expected: float,
) -> None:
    """A 429 raises RateLimited with Retry-After in seconds (default 1 s, at most an hour)."""
    headers = {} if header is None else {"Retry-After": header}
    mocked.post(SYNC_URL, json={"message": "slow down"}, status=429, headers=headers)
    error = raised_by(client)
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == expected


def test_429_with_http_date(mocked: responses.RequestsMock, client: ActiveCampaignClient) -> None:
    """A Retry-After HTTP-date two minutes ahead gives about 120 s."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    mocked.post(
        SYNC_URL,
        status=429,
        headers={"Retry-After": email.utils.format_datetime(later, usegmt=True)},
    )
    error = raised_by(client)
    assert isinstance(error, RateLimited)
    assert 115.0 <= error.retry_after_s <= 120.0


NOW = dt.datetime(2015, 10, 21, 7, 27, 30, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("  3  ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("3601", 3600.0),
        ("1e9", 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 09:28:00 +0200", 30.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
        ("Thu, 22 Oct 2015 07:27:30 GMT", 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 1.0),
        ("nan", 1.0),
        ("inf", 1.0),
        ("-inf", 1.0),
        ("tomorrow", 1.0),
        ("Wed, 99 Foo 2015", 1.0),
        ("", 1.0),
        ("   ", 1.0),
        (None, 1.0),
    ],
)
def test_parse_retry_after_s(value: str | None, expected: float) -> None:
    """Retry-After parses delta-seconds and HTTP-dates, clamps to [0, 3600], else the default."""
    assert parse_retry_after_s(value, now=NOW) == expected


def test_parse_retry_after_default_is_configurable() -> None:
    """default_s is returned when the header is missing or unreadable."""
    assert parse_retry_after_s(None, default_s=5.0) == 5.0
    assert parse_retry_after_s("junk", default_s=5.0) == 5.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_becomes_server_error(
    mocked: responses.RequestsMock, client: ActiveCampaignClient, status: int
) -> None:
    """Any 5xx raises ApiServerError carrying the status."""
    mocked.post(SYNC_URL, body="<html>Bad gateway</html>", status=status)
    error = raised_by(client)
    assert type(error) is ApiServerError
    assert error.status == status
    assert error.errors == ["<html>Bad gateway</html>"]


@pytest.mark.parametrize("status", [401, 402, 403, 404, 301])
def test_config_statuses_become_config_error(
    mocked: responses.RequestsMock, client: ActiveCampaignClient, status: int
) -> None:
    """401/402/403/404 (and redirects, which are not followed) raise ApiConfigError."""
    mocked.post(
        SYNC_URL,
        json={"message": "No Result found for Subscriber with id 0"},
        status=status,
        headers={"Location": "https://elsewhere.example"} if status == 301 else {},
    )
    error = raised_by(client)
    assert type(error) is ApiConfigError
    assert error.status == status
    assert error.errors == ["No Result found for Subscriber with id 0"]
    assert len(mocked.calls) == 1


def test_400_with_empty_object_is_rejected(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """A 400 with body {} raises ApiRejected without error titles."""
    mocked.post(SYNC_URL, json={}, status=400)
    error = raised_by(client)
    assert type(error) is ApiRejected
    assert error.status == 400
    assert error.errors == []
    assert str(error) == "HTTP 400: no error detail"


def test_422_with_documented_errors_is_rejected_with_titles(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """A 422 in the documented errors shape raises ApiRejected carrying every title."""
    body = {
        "errors": [
            {
                "title": "Email address already exists in the system",
                "detail": "",
                "code": "duplicate",
                "source": {"pointer": "/data/attributes/email"},
            },
            {"title": "Phone is invalid", "detail": "", "code": "invalid", "source": {}},
        ]
    }
    mocked.post(SYNC_URL, json=body, status=422)
    error = raised_by(client)
    assert type(error) is ApiRejected
    assert error.status == 422
    assert error.errors == ["Email address already exists in the system", "Phone is invalid"]
    assert "Phone is invalid" in str(error)


@pytest.mark.parametrize("status", [405, 409, 413, 418])
def test_other_4xx_are_rejected(
    mocked: responses.RequestsMock, client: ActiveCampaignClient, status: int
) -> None:
    """Any other 4xx raises ApiRejected."""
    mocked.post(SYNC_URL, status=status)
    assert type(raised_by(client)) is ApiRejected


# Every error body shape the reference lists, as ActiveCampaign's endpoints send them.
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"errors": [{"title": "Invalid", "detail": "Email is not valid", "code": "field_invalid",
                         "source": {"pointer": "/data/attributes/email"}}]},
            ["Invalid: Email is not valid"],
        ),
        ({"errors": [{"status": "422", "title": "Field is required"}]}, ["Field is required"]),
        ({"errors": [{"detail": "Contact Email Address is not valid."}]},
         ["Contact Email Address is not valid."]),
        ({"errors": [{"title": "Same", "detail": "Same"}]}, ["Same"]),
        ({"errors": "Email address is invalid"}, ["Email address is invalid"]),
        ({"errors": ["bad email", "bad phone"]}, ["bad email", "bad phone"]),
        ({"message": "No Result found for SubscriberTag with id 5"},
         ["No Result found for SubscriberTag with id 5"]),
        ({"error": "Duplicate entry 'Trial' for key 'tag'"},
         ["Duplicate entry 'Trial' for key 'tag'"]),
        ({"success": 0, "message": "Rate limit exceeded.", "failureReasons": []},
         ["Rate limit exceeded."]),
        ({"success": 0, "message": "Validation failed",
          "failureReasons": [{"contact": 3, "failureReason": "email is invalid"}, "too many fields"]},
         ["Validation failed", "contact 3: email is invalid", "too many fields"]),
        ({}, []),
    ],
)  # fmt: skip
def test_every_documented_error_shape_keeps_its_messages(
    mocked: responses.RequestsMock,
    client: ActiveCampaignClient,
    body: dict[str, Any],
    expected: list[str],
) -> None:
    """Each error body shape ActiveCampaign uses reaches ApiRejected.errors, message for message."""
    mocked.post(SYNC_URL, json=body, status=422)
    error = raised_by(client)
    assert type(error) is ApiRejected
    assert error.errors == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Service  temporarily\r\n  unavailable", ["Service temporarily unavailable"]),
        (b"<html>\n<head><title>400 Bad Request</title></head>\n</html>",
         ["<html> <head><title>400 Bad Request</title></head> </html>"]),
        (b"", ["Bad Request"]),
        (b"   \n", ["Bad Request"]),
        (b"\xff\xfe\xfa", ["\ufffd\ufffd\ufffd"]),
        (b"{" * 60_000, ["{" * 300]),
        (b"[" * 60_000, ["[" * 300]),
        (b"null", []),
        (b"[]", []),
        (b'"just a string"', ["just a string"]),
        (b'{"errors": [1, null, {"title": 5}, {"detail": "x"}, {"title": "  "}]}', ["x"]),
        (b'{"errors": {"title": "x"}}', ["x"]),
        (b'{"message": 5, "error": {"code": 1}, "failureReasons": [{"contact": 1}]}', []),
        (b'{"errors": [], "message": "Forbidden"}', ["Forbidden"]),
    ],
)  # fmt: skip
def test_other_error_bodies_never_break_parsing(
    mocked: responses.RequestsMock, client: ActiveCampaignClient, body: bytes, expected: list[str]
) -> None:
    """A non-JSON body gives a one-line 300-character snippet, or the reason phrase when empty; odd JSON values are skipped, readable text among them kept."""
    mocked.post(SYNC_URL, body=body, status=400)
    error = raised_by(client)
    assert type(error) is ApiRejected
    assert error.errors == expected


def test_error_messages_are_capped_in_length_and_count() -> None:
    """Each message is cut at 300 characters and put on one line; at most 20 are kept."""
    assert error_messages({"errors": [{"title": "x" * 1000}]}) == ["x" * 300]
    assert error_messages({"message": "two\nlines\t here "}) == ["two lines here"]
    assert error_messages({"errors": [f"e{n}" for n in range(50)]}) == [f"e{n}" for n in range(20)]
    assert len(error_messages({"failureReasons": ["r"] * 10_000})) == 1


def test_repeated_messages_are_kept_once() -> None:
    """A message repeated across keys (message and error, say) appears once, in first-seen order."""
    body = {"errors": ["Forbidden", "Other"], "message": "Forbidden", "error": "Other"}
    assert error_messages(body) == ["Forbidden", "Other"]


def test_lone_surrogates_in_messages_become_encodable() -> None:
    """A JSON-escaped lone surrogate is replaced, so the message can reach Redis and the logs."""
    (message,) = error_messages(json.loads('{"message": "bad \\ud800 value"}'))
    assert message == "bad ? value"


def test_rejection_text_carries_a_plain_text_body(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """A rejection with a plain-text body says that text, not 'no error detail'."""
    mocked.post(SYNC_URL, body="Contact limit reached for this plan", status=400)
    assert str(raised_by(client)) == "HTTP 400: Contact limit reached for this plan"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]


def _mentions_token(error: BaseException) -> bool:
    texts = [str(error), repr(error), repr(vars(error)) if hasattr(error, "__dict__") else ""]
    request = getattr(error, "request", None)
    if request is not None:
        texts.append(repr(dict(getattr(request, "headers", {}) or {})))
    return any(TOKEN in text for text in texts)


@pytest.mark.parametrize(
    ("failure", "label"),
    [
        (requests.ConnectionError, "transport error"),
        (requests.ConnectTimeout, "timeout"),
        (requests.ReadTimeout, "timeout"),
        (requests.exceptions.ChunkedEncodingError, "transport error"),
        (requests.exceptions.SSLError, "transport error"),
    ],
)
def test_transport_failures_never_carry_the_token(
    mocked: responses.RequestsMock,
    client: ActiveCampaignClient,
    failure: type[requests.RequestException],
    label: str,
) -> None:
    """Connection errors and timeouts raise ApiTransportError with no token in str, chain or traceback."""

    def explode(request: requests.PreparedRequest) -> Any:
        # Like requests' adapter: the exception keeps the prepared request, token header included.
        assert request.headers["Api-Token"] == TOKEN
        raise failure(f"boom talking to {request.url}", request=request)

    mocked.add_callback(responses.POST, SYNC_URL, callback=explode)
    error = raised_by(client)
    assert type(error) is ApiTransportError
    assert str(error).startswith(label)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert not any(_mentions_token(item) for item in _chain(error))
    assert TOKEN not in "".join(traceback.format_exception(error))


# -- catalogs -----------------------------------------------------------------------------


def _field(n: int) -> dict[str, Any]:
    return {"id": str(n), "title": f"Field {n}", "perstag": f"F{n}", "type": "text"}


def test_catalog_reads_every_page_of_100_and_takes_a_slot_before_each(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """250 fields take 3 requests (limit=100; offset 0, 100, 200), each after before_request; options come from fieldOptions."""
    fields = [_field(n) for n in range(1, 251)]
    fields[0]["type"] = "dropdown"
    for offset in (0, 100, 200):
        mocked.get(
            f"{BASE}/api/3/fields",
            match=[responses.matchers.query_param_matcher({"limit": "100", "offset": str(offset)})],
            json={
                "fields": fields[offset : offset + 100],
                "fieldOptions": [
                    {"field": "1", "label": "Small", "value": "S", "id": "9"},
                    {"field": "1", "label": "Large", "value": "L", "id": "10"},
                ]
                if offset == 0
                else [],
                "meta": {"total": "250"},
            },
        )
    slots: list[int] = []
    items = list(client.catalog("fields", before_request=lambda: slots.append(len(slots))))
    assert len(items) == 250
    assert len(slots) == 3
    assert items[0] == {
        "id": "1",
        "title": "Field 1",
        "perstag": "F1",
        "type": "dropdown",
        "options": ["S", "L"],
    }
    assert [call.request.headers["Api-Token"] for call in mocked.calls] == [TOKEN] * 3


def test_catalog_of_tags_and_an_empty_catalog(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """Tags come as {"id", "name"} from their "tag" attribute; an empty first page ends the read."""
    mocked.get(
        f"{BASE}/api/3/tags",
        json={"tags": [{"id": "16", "tag": "Trial", "tagType": "contact"}], "meta": {"total": "1"}},
    )
    mocked.get(f"{BASE}/api/3/lists", json={"lists": [], "meta": {"total": "0"}})
    assert list(client.catalog("tags")) == [{"id": "16", "name": "Trial"}]
    assert list(client.catalog("lists")) == []


def test_catalog_errors_are_api_errors(
    mocked: responses.RequestsMock, client: ActiveCampaignClient
) -> None:
    """A catalog read that gets a 429 raises RateLimited, like a sync."""
    mocked.get(f"{BASE}/api/3/accounts", status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        list(client.catalog("accounts"))
    assert caught.value.retry_after_s == 7
