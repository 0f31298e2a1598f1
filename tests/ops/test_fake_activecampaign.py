"""The emulator's ActiveCampaign API contract, over real HTTP (reference/ is the source)."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import requests

import fake_activecampaign
from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.ops.helpers import SEED_REQUEST, SYNC_PATH, TOKEN, ApiSession

# The `contact` keys of the seed's response, in the seed's order.
SEED_CONTACT_KEYS = [
    "cdate", "email", "phone", "firstName", "lastName", "orgid", "segmentio_id",
    "bounced_hard", "bounced_soft", "bounced_date", "ip", "ua", "hash",
    "socialdata_lastcheck", "email_local", "email_domain", "sentcnt", "rating_tstamp",
    "gravatar", "deleted", "anonymized", "udate", "deleted_at", "created_utc_timestamp",
    "updated_utc_timestamp", "links", "id", "organization",
]  # fmt: skip
SEED_CONTACT_LINKS = [
    "bounceLogs", "contactAutomations", "contactData", "contactGoals", "contactLists",
    "contactLogs", "contactTags", "contactDeals", "deals", "fieldValues", "geoIps", "notes",
    "organization", "plusAppend", "trackingLogs", "scoreValues",
]  # fmt: skip
SEED_FIELD_VALUE_KEYS = ["contact", "field", "value", "cdate", "udate", "links", "id", "owner"]
AC_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
FORBIDDEN = {"message": "You do not have permission to perform this action"}


def _email_error(title: str, code: str) -> dict[str, object]:
    return {
        "errors": [
            {
                "title": title,
                "detail": "",
                "code": code,
                "source": {"pointer": "/data/attributes/email"},
            }
        ]
    }


EMAIL_INVALID = _email_error("Email address is not valid.", "email_invalid")
EMAIL_MISSING = _email_error("Contact Email is required", "field_missing")


def test_all_lists_the_public_surface() -> None:
    """`__all__` is sorted and names exactly the three public objects, all importable."""
    assert fake_activecampaign.__all__ == ["EmulatorClient", "FakeActiveCampaign", "main"]
    assert all(hasattr(fake_activecampaign, name) for name in fake_activecampaign.__all__)


def test_seed_request_gets_201_with_seed_shaped_body(api: ApiSession) -> None:
    """The seed's request body is answered 201 with the seed's response shape."""
    response = api.post(SYNC_PATH, json=SEED_REQUEST)

    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["fieldValues", "contact"]
    contact = body["contact"]
    assert list(contact) == SEED_CONTACT_KEYS
    assert list(contact["links"]) == SEED_CONTACT_LINKS
    assert contact["id"] == "1"
    assert (contact["email"], contact["firstName"], contact["lastName"], contact["phone"]) == (
        "jondoe@example.com",
        "John",
        "Doe",
        "7223224241",
    )
    assert contact["orgid"] == "0"
    assert contact["organization"] is None
    assert AC_TIMESTAMP.match(contact["cdate"])
    assert AC_TIMESTAMP.match(contact["udate"])
    values = body["fieldValues"]
    assert [list(value) for value in values] == [SEED_FIELD_VALUE_KEYS] * 2
    assert [(v["field"], v["value"]) for v in values] == [
        ("1", "The Value for First Field"),
        ("6", "2008-01-20"),
    ]
    assert {v["contact"] for v in values} == {v["owner"] for v in values} == {"1"}
    assert list(values[0]["links"]) == ["owner", "field"]
    assert values[0]["id"] != values[1]["id"]


def test_update_changes_only_the_attributes_sent(api: ApiSession, admin: EmulatorClient) -> None:
    """A second sync for the same email (any case) keeps the id and every absent attribute."""
    first = api.post(SYNC_PATH, json=SEED_REQUEST).json()
    second = api.sync(
        {
            "email": "JonDoe@Example.COM",
            "phone": "555",
            "fieldValues": [{"field": "1", "value": "x"}],
        }
    )

    assert second.status_code == 201
    contact = second.json()["contact"]
    assert contact["id"] == first["contact"]["id"]
    assert (contact["firstName"], contact["lastName"], contact["phone"]) == ("John", "Doe", "555")
    assert contact["email"] == "jondoe@example.com"  # the email is the identity, not updated
    [value] = second.json()["fieldValues"]
    assert value["id"] == first["fieldValues"][0]["id"]
    stored = admin.contact("JONDOE@example.com")
    assert stored is not None
    assert stored["fieldValues"] == {"1": "x", "6": "2008-01-20"}
    assert stored["syncs"] == 2
    assert stored["updated_at"] >= stored["created_at"]
    stats = admin.stats()
    assert (stats["created"], stats["updated"]) == (1, 1)


def test_new_email_creates_a_new_contact_with_the_next_id(api: ApiSession) -> None:
    """Contact ids are incrementing strings; a different email is a different contact."""
    ids = [api.sync({"email": f"user{n}@example.com"}).json()["contact"]["id"] for n in range(3)]
    assert ids == ["1", "2", "3"]


@pytest.mark.parametrize("headers", [{"Api-Token": "wrong"}, {}], ids=["wrong", "missing"])
def test_bad_or_missing_token_gets_403(
    emulator: FakeActiveCampaign, open_api: Callable[..., ApiSession], headers: dict[str, str]
) -> None:
    """Without the configured Api-Token the answer is 403 (never 401) and nothing is stored."""
    api = open_api(emulator.url, token=None)
    response = api.post(SYNC_PATH, json=SEED_REQUEST, headers=headers)

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    with EmulatorClient(emulator.url) as admin:
        assert admin.contacts() == {}


def test_token_rotation_takes_effect_at_once(
    emulator: FakeActiveCampaign, open_api: Callable[..., ApiSession], admin: EmulatorClient
) -> None:
    """After POST /_emulator/token only the new token is accepted."""
    old, new = open_api(emulator.url), open_api(emulator.url, token="rotated-token")
    assert new.sync({"email": "a@example.com"}).status_code == 403

    admin.set_token("rotated-token")

    assert old.sync({"email": "a@example.com"}).status_code == 403
    assert new.sync({"email": "a@example.com"}).status_code == 201


def test_missing_email_gets_documented_422(api: ApiSession) -> None:
    """A contact without an email gets 422 "Contact Email is required" (field_missing)."""
    for contact in ({"firstName": "John"}, {"email": ""}, {"email": None}):
        response = api.sync(contact)
        assert response.status_code == 422
        assert response.json() == EMAIL_MISSING


@pytest.mark.parametrize(
    "email",
    [
        "plainaddress",
        "two@@example.com",
        "a@b@example.com",
        "no-dot@localhost",
        "space in@example.com",
        "trailing@example.com ",
        "@example.com",
        "user@.example.com",
        "user@example.",
        "user@exa..mple.com",
        "a" * 250 + "@example.com",
        42,
    ],
)
def test_invalid_email_gets_documented_422(api: ApiSession, email: object) -> None:
    """Malformed emails get the documented 422 errors shape (email_invalid)."""
    response = api.sync({"email": email})

    assert response.status_code == 422
    assert response.json() == EMAIL_INVALID


def test_reject_emails_fault_gets_documented_422(api: ApiSession, admin: EmulatorClient) -> None:
    """An email matching reject_emails gets 422 "Email address is not valid."; others pass."""
    admin.set_faults(reject_emails=[r"@blocked\.example$"])

    rejected = api.sync({"email": "Someone@BLOCKED.example"})
    accepted = api.sync({"email": "someone@fine.example"})

    assert rejected.status_code == 422
    assert rejected.json() == EMAIL_INVALID
    assert accepted.status_code == 201
    assert list(admin.contacts()) == ["someone@fine.example"]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[]",
        b'{"contact": "jondoe@example.com"}',
        b'{"email": "jondoe@example.com"}',
        b'{"contact": {"email": "a@example.com", "fieldValues": {"1": "x"}}}',
        b'{"contact": {"email": "a@example.com", "fieldValues": [{"value": "x"}]}}',
        b'{"contact": {"email": "a@example.com", "firstName": {"nested": 1}}}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
    ],
    ids=lambda raw: repr(raw[:30]),
)
def test_malformed_body_gets_400_with_empty_object(api: ApiSession, raw: bytes) -> None:
    """A body that is not {"contact": {...}} with usable types gets 400 with body {}."""
    response = api.post(SYNC_PATH, data=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {}
    assert api.get("/api/3/fields").status_code == 200  # the server is still fine


def test_oversized_body_gets_413(api: ApiSession) -> None:
    """Bodies over 1 MiB are refused with 413 and the connection stays usable."""
    huge = b'{"contact": {"email": "a@example.com", "firstName": "' + b"x" * (1 << 20) + b'"}}'

    response = api.post(SYNC_PATH, data=huge, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert api.sync({"email": "a@example.com"}).status_code == 201


def test_unknown_attributes_are_ignored_but_counted(api: ApiSession, admin: EmulatorClient) -> None:
    """Undocumented contact keys are ignored like the real API does, and counted in stats."""
    response = api.sync({"email": "a@example.com", "orgid": "3", "tags": ["x"], "first_name": "A"})

    assert response.status_code == 201
    assert response.json()["contact"]["firstName"] == ""
    assert admin.stats()["ignored_attributes"] == 3
    stored = admin.contact("a@example.com")
    assert stored is not None
    assert stored["tags"] == []  # a "tags" attribute on sync does not tag the contact


def test_unknown_field_ids_are_counted(api: ApiSession, admin: EmulatorClient) -> None:
    """fieldValues for ids that GET /api/3/fields does not list are counted in stats."""
    api.sync({"email": "a@example.com", "fieldValues": [{"field": "99", "value": "x"}]})
    assert admin.stats()["unknown_field_values"] == 1


def test_lookup_by_email(api: ApiSession) -> None:
    """GET /api/3/contacts?email= finds a contact case-insensitively; none gives total "0"."""
    empty = api.get("/api/3/contacts", params={"email": "jondoe@example.com"})
    assert empty.status_code == 200
    assert empty.json() == {"contacts": [], "meta": {"total": "0"}}

    created = api.post(SYNC_PATH, json=SEED_REQUEST).json()["contact"]
    found = api.get("/api/3/contacts", params={"email": "JonDoe@example.com"}).json()

    assert found["meta"] == {"total": "1"}
    assert found["contacts"] == [created]


def test_fields_listing_is_paged(api: ApiSession) -> None:
    """GET /api/3/fields pages with limit/offset, caps limit at 100, reports meta.total."""
    everything = api.get("/api/3/fields", params={"limit": 500}).json()
    page = api.get("/api/3/fields", params={"limit": 3, "offset": 9}).json()

    assert everything["meta"] == page["meta"] == {"total": "11"}
    fields = {field["id"]: field for field in everything["fields"]}
    assert list(fields) == [str(n) for n in range(1, 12)]
    assert fields["6"]["type"] == "date"
    assert "multiselect" not in {field["type"] for field in fields.values()}
    assert all({"title", "type", "perstag"} <= set(field) for field in fields.values())
    assert [field["id"] for field in page["fields"]] == ["10", "11"]


def test_unknown_path_gets_404(api: ApiSession) -> None:
    """Paths we do not emulate get 404 {"message": "No Result found"}."""
    for path in ("/api/3/deals", "/api/3/contact/sync/extra", "/nowhere"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {"message": "No Result found"}


def test_keep_alive_serves_several_requests_on_one_connection(emulator: FakeActiveCampaign) -> None:
    """HTTP/1.1 keep-alive: one connection carries several requests, each with Content-Length."""
    url = urlsplit(emulator.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        for n in range(3):
            body = json.dumps({"contact": {"email": f"k{n}@example.com"}})
            connection.request("POST", SYNC_PATH, body=body, headers={"Api-Token": TOKEN})
            response = connection.getresponse()
            assert response.status == 201
            assert int(response.headers["Content-Length"]) == len(response.read())
            assert response.headers.get("Connection") != "close"
    finally:
        connection.close()


def test_admin_log_and_stats_never_contain_the_token(
    start_emulator: Callable[..., FakeActiveCampaign], open_api: Callable[..., ApiSession]
) -> None:
    """Neither the request log nor any admin answer contains an Api-Token value."""
    emulator = start_emulator(api_token="tok-SECRET-initial", rate_limit=0)
    good = open_api(emulator.url, token="tok-SECRET-initial")
    bad = open_api(emulator.url, token="tok-SECRET-wrong")
    good.post(SYNC_PATH, json=SEED_REQUEST)
    bad.post(SYNC_PATH, json=SEED_REQUEST)
    with EmulatorClient(emulator.url) as admin:
        admin.set_token("tok-SECRET-rotated")
        dumps = json.dumps([admin.stats(), admin.requests_log(), admin.contacts(), admin.faults()])

    assert "SECRET" not in dumps


def test_request_log_records_each_client_request(api: ApiSession, admin: EmulatorClient) -> None:
    """Each client request is logged with arrival time, method, path, status, email, body."""
    api.post(SYNC_PATH, json=SEED_REQUEST)
    api.get("/api/3/contacts", params={"email": "jondoe@example.com"})
    admin.stats()  # admin traffic is not logged

    log = admin.requests_log()

    assert [(e["method"], e["path"], e["status"], e["email"]) for e in log] == [
        ("POST", SYNC_PATH, 201, "jondoe@example.com"),
        ("GET", "/api/3/contacts", 200, "jondoe@example.com"),
    ]
    assert log[0]["body"] == SEED_REQUEST
    assert log[0]["t"] <= log[1]["t"]
    stats = admin.stats()
    assert stats["requests_total"] == 2
    assert stats["by_status"] == {"201": 1, "200": 1}
    assert stats["by_path"] == {SYNC_PATH: 1, "/api/3/contacts": 1}
    assert stats["first_request_at"] == log[0]["t"]
    assert stats["last_request_at"] == log[1]["t"]


def test_concurrent_requests_for_one_email_are_measured(
    start_emulator: Callable[..., FakeActiveCampaign], open_api: Callable[..., ApiSession]
) -> None:
    """max_in_flight_per_email counts overlapping requests for one email; other emails don't."""
    emulator = start_emulator(rate_limit=0, latency_ms=500)
    contacts = [{"email": "same@example.com"}, {"email": "SAME@example.com"}]
    contacts.append({"email": "other@example.com"})
    sessions = [open_api(emulator.url) for _ in contacts]
    threads = [
        threading.Thread(target=session.sync, args=(contact,))
        for session, contact in zip(sessions, contacts, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with EmulatorClient(emulator.url) as admin:
        stats = admin.stats()
    assert stats["max_in_flight_per_email"] == 2
    assert stats["max_in_flight"] == 3


def test_sequential_requests_never_overlap(api: ApiSession, admin: EmulatorClient) -> None:
    """A client that waits for each answer shows max_in_flight_per_email == 1."""
    for _ in range(20):
        assert api.sync({"email": "same@example.com"}).status_code == 201
    assert admin.stats()["max_in_flight_per_email"] == 1


def test_reset_forgets_contacts_log_stats_faults_and_token(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """POST /_emulator/reset restores the emulator as it was constructed."""
    api.post(SYNC_PATH, json=SEED_REQUEST)
    admin.set_faults(latency_ms=5, reject_emails=["x"])
    admin.set_token("other-token")

    admin.reset()

    assert admin.contacts() == {}
    assert admin.requests_log() == []
    assert admin.stats()["requests_total"] == 0
    assert admin.faults()["reject_emails"] == []
    assert api.sync({"email": "a@example.com"}).json()["contact"]["id"] == "1"


def test_admin_contact_lookup_handles_absent_and_plus_addresses(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """GET /_emulator/contacts/<email> decodes the path and returns None when absent."""
    api.sync({"email": "a+tag@example.com", "firstName": "A"})

    stored = admin.contact("a+tag@example.com")

    assert stored is not None
    assert stored["firstName"] == "A"
    assert admin.contact("nobody@example.com") is None


def test_admin_rejects_bad_fault_settings(admin: EmulatorClient) -> None:
    """Invalid or unknown fault settings get 400 and change nothing."""
    before = admin.faults()
    for settings in (
        {"error_rate": 2},
        {"typo": 1},
        {"outage": {"mode": "melt"}},
        {"force_status": {"status": 200}},
        {"reject_emails": ["("]},
    ):
        with pytest.raises(ValueError, match=r"."):
            admin.set_faults(**settings)
    assert admin.faults() == before


def test_requests_session_can_be_reused_after_errors(api: ApiSession) -> None:
    """4xx answers keep the connection usable for the next request."""
    assert api.sync({"email": "bad"}).status_code == 422
    assert api.post(SYNC_PATH, data=b"nope").status_code == 400
    assert api.sync({"email": "good@example.com"}).status_code == 201
    with pytest.raises(requests.HTTPError):
        api.get("/api/3/deals").raise_for_status()
