"""Every endpoint alike: the gate (token, rate limit, faults), body checks, route stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.ops.helpers import ApiSession

StartEmulator = Callable[..., FakeActiveCampaign]
OpenApi = Callable[..., ApiSession]

# One request per endpoint; ids need not exist, since the gate answers before the route.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/3/contact/sync", {"contact": {"email": "a@example.com"}}),
    ("GET", "/api/3/contacts?email=a@example.com", None),
    ("GET", "/api/3/fields?limit=100", None),
    ("GET", "/api/3/fields/4", None),
    ("GET", "/api/3/fields/4/options", None),
    ("GET", "/api/3/tags?search=trial", None),
    ("POST", "/api/3/tags", {"tag": {"tag": "Trial"}}),
    ("POST", "/api/3/contactTags", {"contactTag": {"contact": "1", "tag": "1"}}),
    ("GET", "/api/3/contacts/1/contactTags", None),
    ("DELETE", "/api/3/contactTags/1", None),
    ("GET", "/api/3/lists?filters[name]=news", None),
    ("POST", "/api/3/contactLists", {"contactList": {"list": "1", "contact": "1", "status": 1}}),
    ("GET", "/api/3/accounts?search=acme", None),
    ("POST", "/api/3/accounts", {"account": {"name": "Acme"}}),
    ("GET", "/api/3/accountContacts?filters[contact]=1", None),
    ("POST", "/api/3/accountContacts", {"accountContact": {"contact": "1", "account": "1"}}),
    ("DELETE", "/api/3/accountContacts/1", None),
]
FORBIDDEN = {"message": "You do not have permission to perform this action"}
# The creating endpoints: (path, wrapper key, the attributes they require).
CREATES = [
    ("/api/3/tags", "tag", ("tag",)),
    ("/api/3/contactTags", "contactTag", ("contact", "tag")),
    ("/api/3/contactLists", "contactList", ("list", "contact", "status")),
    ("/api/3/accounts", "account", ("name",)),
    ("/api/3/accountContacts", "accountContact", ("contact", "account")),
]
MISSING = [(path, key, name, names) for path, key, names in CREATES for name in names]


def _send(
    api: ApiSession, method: str, path: str, body: dict[str, Any] | None
) -> requests.Response:
    return api.session.request(method, f"{api.base_url}{path}", json=body, timeout=api.timeout_s)


@pytest.mark.parametrize(
    ("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS]
)
def test_bad_token_gets_403_on_every_endpoint(
    emulator: FakeActiveCampaign,
    open_api: OpenApi,
    admin: EmulatorClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """A wrong Api-Token gets 403 with the forbidden body, and changes nothing."""
    response = _send(open_api(emulator.url, token="wrong"), method, path, body)

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert (admin.contacts(), admin.tags(), admin.accounts()) == ({}, [], [])


def test_every_endpoint_counts_against_the_one_rate_limit(
    start_emulator: StartEmulator, open_api: OpenApi
) -> None:
    """Each endpoint's request takes a slot of the account's window; once full, all get 429."""
    emulator = start_emulator(rate_limit=len(ENDPOINTS))
    api = open_api(emulator.url)

    admitted = [_send(api, *endpoint) for endpoint in ENDPOINTS]
    refused = [_send(api, *endpoint) for endpoint in ENDPOINTS]

    assert 429 not in {r.status_code for r in admitted}
    assert [r.headers["RateLimit-Remaining"] for r in admitted][-1] == "0"
    assert {r.status_code for r in refused} == {429}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    with EmulatorClient(emulator.url) as admin:
        assert admin.stats()["rate_limited"] == len(ENDPOINTS)


def test_forced_status_applies_to_every_endpoint(api: ApiSession, admin: EmulatorClient) -> None:
    """force_status answers every endpoint alike, then service resumes."""
    admin.set_faults(force_status={"status": 503, "count": len(ENDPOINTS)})

    answers = [_send(api, *endpoint) for endpoint in ENDPOINTS]

    assert {r.status_code for r in answers} == {503}
    assert admin.tags() == admin.accounts() == []
    assert _send(api, *ENDPOINTS[2]).status_code == 200


@pytest.mark.parametrize("endpoint", [ENDPOINTS[6], ENDPOINTS[9], ENDPOINTS[15]], ids=str)
def test_outage_reset_drops_catalog_and_link_requests(
    api: ApiSession, admin: EmulatorClient, endpoint: tuple[str, str, dict[str, Any] | None]
) -> None:
    """A "reset" outage drops tag, contactTag and accountContact requests unanswered."""
    admin.set_faults(outage={"mode": "reset", "seconds": 60})

    with pytest.raises(requests.ConnectionError):
        _send(api, *endpoint)

    assert [entry["status"] for entry in admin.requests_log()] == [0]


@pytest.mark.parametrize(
    ("path", "key", "missing", "required"), MISSING, ids=[f"{m[0]}-{m[2]}" for m in MISSING]
)
def test_a_missing_required_attribute_is_422(
    api: ApiSession, path: str, key: str, missing: str, required: tuple[str, ...]
) -> None:
    """Without one required attribute: 422 in the documented errors shape, pointing at it."""
    body = {key: {name: "1" for name in required if name != missing}}

    response = api.post(path, json=body)

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["code"], error["source"]) == (
        "field_missing",
        {"pointer": f"/data/attributes/{missing}"},
    )


@pytest.mark.parametrize(("path", "key"), [(p, k) for p, k, _ in CREATES], ids=str)
@pytest.mark.parametrize("body", [None, [], {"other": {}}, "text"], ids=repr)
def test_a_body_without_its_wrapper_object_is_400(
    api: ApiSession, path: str, key: str, body: object
) -> None:
    """A create whose body is not {"<resource>": {...}} gets 400 with body {}."""
    response = api.post(path, json=body) if body is not None else api.post(path, data=b"x")
    assert (response.status_code, response.json()) == (400, {})


def test_unemulated_methods_on_known_paths_get_404(api: ApiSession) -> None:
    """A path we emulate with a method we do not (PUT /tags) gets the generic 404."""
    response = api.session.put(f"{api.base_url}/api/3/tags", json={}, timeout=api.timeout_s)
    assert (response.status_code, response.json()) == (404, {"message": "No Result found"})


def test_stats_group_paths_by_route_template(api: ApiSession, admin: EmulatorClient) -> None:
    """by_path and by_route count /contacts/7/contactTags and /contacts/8/... as one route."""
    first, second = api.contact_id("a@example.com"), api.contact_id("b@example.com")
    for contact in (first, second, "99"):
        api.get(f"/api/3/contacts/{contact}/contactTags")
    for offset in (0, 100):
        api.get("/api/3/fields", params={"limit": 100, "offset": offset})

    stats = admin.stats()

    assert stats["by_path"]["/api/3/contacts/{contact}/contactTags"] == 3
    assert stats["by_route"] == {
        "POST /api/3/contact/sync": 2,
        "GET /api/3/contacts/{contact}/contactTags": 3,
        "GET /api/3/fields": 2,
    }
    paths = [entry["path"] for entry in admin.requests_log()]
    assert f"/api/3/contacts/{second}/contactTags" in paths  # the log keeps real paths


def test_link_requests_are_attributed_to_the_contacts_email(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """The log names the email of the contact a tag, list or account request is about."""
    contact = api.contact_id("a@example.com")
    [tag] = admin.define_tags("Trial")
    admin.define_lists("Newsletter")
    [account] = admin.define_accounts("Acme")
    link = api.post(
        "/api/3/contactTags", json={"contactTag": {"contact": contact, "tag": tag["id"]}}
    ).json()["contactTag"]
    api.post(
        "/api/3/contactLists",
        json={"contactList": {"list": "1", "contact": contact, "status": "1"}},
    )
    api.post(
        "/api/3/accountContacts",
        json={"accountContact": {"contact": contact, "account": account["id"]}},
    )
    api.get("/api/3/accountContacts", params={"filters[contact]": contact})
    api.get(f"/api/3/contacts/{contact}/contactTags")
    api.delete(f"/api/3/contactTags/{link['id']}")
    api.get("/api/3/tags")

    emails = [entry["email"] for entry in admin.requests_log()]

    assert emails == ["a@example.com"] * 7 + [None]
    assert admin.stats()["max_in_flight_per_email"] == 1
