"""Accounts (companies): search, create, link a contact, move it, unlink, and inspection."""

from __future__ import annotations

from fake_activecampaign import EmulatorClient
from tests.ops.helpers import ApiSession

ACCOUNTS = "/api/3/accounts"
ACCOUNT_CONTACTS = "/api/3/accountContacts"


def _create_account(api: ApiSession, name: str) -> str:
    response = api.post(ACCOUNTS, json={"account": {"name": name}})
    assert response.status_code == 201, response.text
    return str(response.json()["account"]["id"])


def _link(api: ApiSession, contact: str, account: str, job_title: str = "") -> dict[str, str]:
    body = {"accountContact": {"contact": contact, "account": account, "jobTitle": job_title}}
    response = api.post(ACCOUNT_CONTACTS, json=body)
    assert response.status_code == 201, response.text
    link: dict[str, str] = response.json()["accountContact"]
    return link


def test_create_answers_201_and_search_finds_it(api: ApiSession, admin: EmulatorClient) -> None:
    """POST /accounts: 201 {"account": {name, id}}; ?search= is contains, any case."""
    account_id = _create_account(api, "Acme Inc")
    admin.define_accounts("Acme Holdings", "Globex")

    body = api.get(ACCOUNTS, params={"search": "ACME"}).json()

    assert [(a["id"], a["name"]) for a in body["accounts"]] == [
        (account_id, "Acme Inc"),
        ("2", "Acme Holdings"),
    ]
    assert body["meta"] == {"total": "2"}
    assert admin.accounts() == [
        {"id": "1", "name": "Acme Inc"},
        {"id": "2", "name": "Acme Holdings"},
        {"id": "3", "name": "Globex"},
    ]


def test_duplicate_or_missing_name_is_422(api: ApiSession) -> None:
    """A name that exists (any case) or no name gets a 422 in the documented shape."""
    _create_account(api, "Acme Inc")

    duplicate = api.post(ACCOUNTS, json={"account": {"name": "ACME INC"}})
    nameless = api.post(ACCOUNTS, json={"account": {}})

    assert duplicate.status_code == nameless.status_code == 422
    assert duplicate.json()["errors"][0]["code"] == "duplicate"
    assert nameless.json()["errors"][0]["source"] == {"pointer": "/data/attributes/name"}
    assert api.post(ACCOUNTS, json={"name": "x"}).status_code == 400


def test_link_answers_201_and_shows_in_inspection(api: ApiSession, admin: EmulatorClient) -> None:
    """POST /accountContacts: 201 {"accountContact": {contact, account, jobTitle, id}}."""
    contact = api.contact_id("a@example.com")
    account = _create_account(api, "Acme Inc")

    link = _link(api, contact, account, "CTO")

    assert (link["contact"], link["account"], link["jobTitle"], link["id"]) == (
        contact,
        account,
        "CTO",
        "1",
    )
    assert admin.contacts()["a@example.com"]["account"] == "Acme Inc"


def test_moving_a_contact_deletes_the_old_link_first(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """A second link is refused; find it by filters[contact], delete it, then link anew."""
    contact = api.contact_id("a@example.com")
    acme, globex = _create_account(api, "Acme Inc"), _create_account(api, "Globex")
    _link(api, contact, acme)

    refused = api.post(
        ACCOUNT_CONTACTS, json={"accountContact": {"contact": contact, "account": globex}}
    )
    found = api.get(ACCOUNT_CONTACTS, params={"filters[contact]": contact}).json()
    [old] = found["accountContacts"]
    deleted = api.delete(f"{ACCOUNT_CONTACTS}/{old['id']}")
    _link(api, contact, globex)

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "duplicate"
    assert found["meta"] == {"total": "1"}
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert admin.contacts()["a@example.com"]["account"] == "Globex"


def test_account_contacts_filter_by_contact_and_account(api: ApiSession) -> None:
    """GET /accountContacts narrows by filters[contact] and filters[account]."""
    contacts = [api.contact_id(f"user{n}@example.com") for n in range(3)]
    acme, globex = _create_account(api, "Acme Inc"), _create_account(api, "Globex")
    for contact, account in zip(contacts, (acme, acme, globex), strict=True):
        _link(api, contact, account)

    def listed(**filters: str) -> list[str]:
        params = {f"filters[{key}]": value for key, value in filters.items()}
        body = api.get(ACCOUNT_CONTACTS, params=params).json()
        return [link["contact"] for link in body["accountContacts"]]

    assert listed() == contacts
    assert listed(account=acme) == contacts[:2]
    assert listed(contact=contacts[2]) == contacts[2:]
    assert listed(contact="99") == []


def test_unknown_ids_are_404(api: ApiSession) -> None:
    """An unknown contact, account or link id gets a 404 naming it."""
    contact = api.contact_id("a@example.com")
    account = _create_account(api, "Acme Inc")

    answers = [
        api.post(ACCOUNT_CONTACTS, json={"accountContact": {"contact": "99", "account": account}}),
        api.post(ACCOUNT_CONTACTS, json={"accountContact": {"contact": contact, "account": "99"}}),
        api.delete(f"{ACCOUNT_CONTACTS}/99"),
    ]

    assert [(r.status_code, r.json()["message"]) for r in answers] == [
        (404, "No Result found for Subscriber with id 99"),
        (404, "No Result found for Account with id 99"),
        (404, "No Result found for AccountContact with id 99"),
    ]


def test_unlinked_contact_shows_no_account(api: ApiSession, admin: EmulatorClient) -> None:
    """After the link is deleted the inspection shows account None."""
    contact = api.contact_id("a@example.com")
    link = _link(api, contact, _create_account(api, "Acme Inc"))

    api.delete(f"{ACCOUNT_CONTACTS}/{link['id']}")

    assert admin.contacts()["a@example.com"]["account"] is None
