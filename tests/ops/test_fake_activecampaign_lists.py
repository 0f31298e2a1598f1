"""Lists: finding them by name, subscribing and unsubscribing contacts, and inspection."""

from __future__ import annotations

import pytest

from fake_activecampaign import EmulatorClient
from tests.ops.helpers import ApiSession

LISTS = "/api/3/lists"
CONTACT_LISTS = "/api/3/contactLists"


def _set_status(api: ApiSession, contact: str, list_id: str, status: object) -> dict[str, object]:
    response = api.post(
        CONTACT_LISTS, json={"contactList": {"list": list_id, "contact": contact, "status": status}}
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_find_by_name_returns_id_name_and_stringid(api: ApiSession, admin: EmulatorClient) -> None:
    """filters[name] finds lists by name (contains, any case) with id, name and stringid."""
    admin.define_lists("Newsletter", "Product news", "Customers")

    body = api.get(LISTS, params={"filters[name]": "NEWS"}).json()

    found = [(item["id"], item["name"], item["stringid"]) for item in body["lists"]]
    assert found == [("1", "Newsletter", "newsletter"), ("2", "Product news", "product-news")]
    assert body["meta"] == {"total": "2"}


def test_lists_page_like_every_listing(api: ApiSession, admin: EmulatorClient) -> None:
    """Without a filter all lists are listed, 20 per page unless limit says otherwise."""
    admin.define_lists(*(f"List {n}" for n in range(25)))

    assert len(api.get(LISTS).json()["lists"]) == 20
    assert [item["name"] for item in api.get(LISTS, params={"offset": 23}).json()["lists"]] == [
        "List 23",
        "List 24",
    ]


@pytest.mark.parametrize("status", ["1", 1])
def test_subscribe_answers_200_with_contact_list_and_contacts(
    api: ApiSession, admin: EmulatorClient, status: object
) -> None:
    """Status 1 subscribes: 200 {"contactList": {...}, "contacts": [the contact]}."""
    contact = api.contact_id("a@example.com")
    [newsletter] = admin.define_lists("Newsletter")

    body = _set_status(api, contact, newsletter["id"], status)

    assert list(body) == ["contactList", "contacts"]
    assert body["contactList"] == {"contact": contact, "list": "1", "status": "1", "id": "1"}
    assert [item["email"] for item in body["contacts"]] == ["a@example.com"]  # type: ignore[attr-defined]
    assert admin.contacts()["a@example.com"]["lists"] == {"1": 1}


def test_unsubscribe_then_resubscribe_is_counted(api: ApiSession, admin: EmulatorClient) -> None:
    """Status 2 unsubscribes; subscribing again afterwards counts as `resubscribed`."""
    contact = api.contact_id("a@example.com")
    admin.define_lists("Newsletter", "Offers")

    _set_status(api, contact, "1", "1")
    _set_status(api, contact, "2", "2")  # never on it: recorded as unsubscribed
    _set_status(api, contact, "1", "2")
    assert admin.contacts()["a@example.com"]["lists"] == {"1": 2, "2": 2}
    assert admin.stats()["resubscribed"] == 0

    _set_status(api, contact, "1", "1")

    assert admin.contacts()["a@example.com"]["lists"] == {"1": 1, "2": 2}
    assert admin.stats()["resubscribed"] == 1


def test_unknown_contact_or_list_is_404(api: ApiSession, admin: EmulatorClient) -> None:
    """An unknown contact or list id gets a 404 naming it."""
    contact = api.contact_id("a@example.com")
    admin.define_lists("Newsletter")

    no_contact = api.post(
        CONTACT_LISTS, json={"contactList": {"list": "1", "contact": "99", "status": "1"}}
    )
    no_list = api.post(
        CONTACT_LISTS, json={"contactList": {"list": "99", "contact": contact, "status": "1"}}
    )

    assert (no_contact.status_code, no_contact.json()) == (
        404,
        {"message": "No Result found for Subscriber with id 99"},
    )
    assert (no_list.status_code, no_list.json()) == (
        404,
        {"message": "No Result found for List with id 99"},
    )


def test_a_status_other_than_1_or_2_is_422(api: ApiSession, admin: EmulatorClient) -> None:
    """Only subscribe (1) and unsubscribe (2) are emulated; status 3 gets a 422 on status."""
    contact = api.contact_id("a@example.com")
    admin.define_lists("Newsletter")

    response = api.post(
        CONTACT_LISTS, json={"contactList": {"list": "1", "contact": contact, "status": "3"}}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["source"]["pointer"] == "/data/attributes/status"
    assert admin.contacts()["a@example.com"]["lists"] == {}


def test_admin_refuses_duplicate_list_names(admin: EmulatorClient) -> None:
    """Defining a list whose name exists (any case) is a 400 and adds nothing."""
    admin.define_lists("Newsletter")
    with pytest.raises(ValueError, match="duplicate"):
        admin.define_lists("Other", "NEWSLETTER")
    assert [item["name"] for item in admin.lists()] == ["Newsletter"]
