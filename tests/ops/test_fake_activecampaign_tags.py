"""Tags: search, create, add to a contact, list a contact's tags, remove, and inspection."""

from __future__ import annotations

import pytest

from fake_activecampaign import EmulatorClient
from tests.ops.helpers import ApiSession

TAGS = "/api/3/tags"
CONTACT_TAGS = "/api/3/contactTags"


def _create_tag(api: ApiSession, name: str) -> str:
    response = api.post(TAGS, json={"tag": {"tag": name, "tagType": "contact", "description": ""}})
    assert response.status_code == 201, response.text
    return str(response.json()["tag"]["id"])


def _tag_contact(api: ApiSession, contact: str, tag: str) -> dict[str, object]:
    response = api.post(CONTACT_TAGS, json={"contactTag": {"contact": contact, "tag": tag}})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()["contactTag"]
    return body


def test_create_answers_201_with_the_tag(api: ApiSession, admin: EmulatorClient) -> None:
    """POST /tags answers 201 {"tag": {..., "id"}} and the tag is then defined."""
    response = api.post(
        TAGS, json={"tag": {"tag": "Trial", "tagType": "contact", "description": "d"}}
    )

    assert response.status_code == 201
    tag = response.json()["tag"]
    assert (tag["tag"], tag["tagType"], tag["description"], tag["id"]) == (
        "Trial",
        "contact",
        "d",
        "1",
    )
    assert admin.tags() == [{"id": "1", "tag": "Trial", "tagType": "contact", "description": "d"}]


@pytest.mark.parametrize("name", ["Trial", "TRIAL", "trial"])
def test_duplicate_name_in_any_case_is_refused(api: ApiSession, name: str) -> None:
    """A tag name that exists, in any letter case, gets the duplicate-entry error."""
    _create_tag(api, "Trial")

    response = api.post(TAGS, json={"tag": {"tag": name}})

    assert response.status_code == 422
    assert response.json() == {
        "message": "Could not process request",
        "error": f"Duplicate entry 'contact-{name}' for key 'typetag'",
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [({"tag": {"tagType": "contact"}}, 422), ({"tag": {"tag": "  "}}, 422), ({"tag": "x"}, 400)],
)
def test_create_without_a_name_is_refused(api: ApiSession, body: object, status: int) -> None:
    """No usable name: 422 in the documented errors shape; no {"tag": {...}} at all: 400 {}."""
    response = api.post(TAGS, json=body)

    assert response.status_code == status
    if status == 422:
        assert response.json()["errors"][0]["source"] == {"pointer": "/data/attributes/tag"}
    else:
        assert response.json() == {}


def test_search_is_a_case_insensitive_contains_match(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """?search= returns every tag containing the text in any case, with meta.total."""
    admin.define_tags("trial-started", "Trial", "paid", "free TRIAL")

    body = api.get(TAGS, params={"search": "trial"}).json()

    assert [tag["tag"] for tag in body["tags"]] == ["trial-started", "Trial", "free TRIAL"]
    assert body["meta"] == {"total": "3"}
    assert api.get(TAGS).json()["meta"] == {"total": "4"}


def test_search_pages_20_by_default(api: ApiSession, admin: EmulatorClient) -> None:
    """Tag listings page like every listing: 20 by default, limit/offset for the rest."""
    admin.define_tags(*(f"tag-{n:02}" for n in range(45)))

    first = api.get(TAGS).json()
    last = api.get(TAGS, params={"limit": 100, "offset": 40}).json()

    assert len(first["tags"]) == 20
    assert [tag["tag"] for tag in last["tags"]] == [f"tag-{n}" for n in range(40, 45)]
    assert first["meta"] == last["meta"] == {"total": "45"}


def test_add_tag_to_contact_answers_201_with_the_contact_tag(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """POST /contactTags answers 201 {"contactTag": {id, contact, tag, cdate, links}}."""
    contact = api.contact_id("a@example.com")
    tag = _create_tag(api, "Trial")

    link = _tag_contact(api, contact, tag)

    assert {"id", "contact", "tag", "cdate", "links"} <= set(link)
    assert (link["contact"], link["tag"]) == (contact, tag)
    assert admin.contacts()["a@example.com"]["tags"] == ["Trial"]


def test_adding_a_tag_twice_returns_the_existing_link(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """Re-adding a tag the contact has answers 201 with the same contactTag (an assumption)."""
    contact = api.contact_id("a@example.com")
    tag = _create_tag(api, "Trial")

    first, second = _tag_contact(api, contact, tag), _tag_contact(api, contact, tag)

    assert first == second
    assert len(api.get(f"/api/3/contacts/{contact}/contactTags").json()["contactTags"]) == 1


def test_adding_a_tag_to_an_unknown_contact_or_tag_is_404(api: ApiSession) -> None:
    """Unknown contact: 404 (documented); unknown tag: 404 as well; numbers work as ids."""
    contact = api.contact_id("a@example.com")
    tag = _create_tag(api, "Trial")

    no_contact = api.post(CONTACT_TAGS, json={"contactTag": {"contact": 99, "tag": tag}})
    no_tag = api.post(CONTACT_TAGS, json={"contactTag": {"contact": int(contact), "tag": "99"}})

    assert no_contact.status_code == 404
    assert no_contact.json() == {"message": "No Result found for Subscriber with id 99"}
    assert no_tag.status_code == 404
    assert no_tag.json() == {"message": "No Result found for Tag with id 99"}


def test_contact_tags_lists_the_links_for_removal(api: ApiSession) -> None:
    """GET /contacts/{id}/contactTags lists id and tag of each link; unknown contact 404."""
    contact = api.contact_id("a@example.com")
    other = api.contact_id("b@example.com")
    tags = [_create_tag(api, name) for name in ("one", "two")]
    links = [_tag_contact(api, contact, tag) for tag in tags]
    _tag_contact(api, other, tags[0])

    listed = api.get(f"/api/3/contacts/{contact}/contactTags").json()["contactTags"]

    assert [(item["id"], item["tag"]) for item in listed] == [(ln["id"], ln["tag"]) for ln in links]
    assert api.get("/api/3/contacts/99/contactTags").status_code == 404


def test_remove_answers_200_then_the_documented_404(api: ApiSession, admin: EmulatorClient) -> None:
    """DELETE /contactTags/{id}: 200 {}; again: 404 "No Result found for SubscriberTag ..."."""
    contact = api.contact_id("a@example.com")
    link = _tag_contact(api, contact, _create_tag(api, "Trial"))

    removed = api.delete(f"{CONTACT_TAGS}/{link['id']}")
    again = api.delete(f"{CONTACT_TAGS}/{link['id']}")

    assert (removed.status_code, removed.json()) == (200, {})
    assert again.status_code == 404
    assert again.json() == {"message": f"No Result found for SubscriberTag with id {link['id']}"}
    assert admin.contacts()["a@example.com"]["tags"] == []


def test_admin_refuses_duplicate_tags(admin: EmulatorClient) -> None:
    """Defining a tag that exists (any case) through the admin API is a 400, all or none."""
    admin.define_tags("Trial")
    with pytest.raises(ValueError, match=r"'TRIAL' .*'Trial'"):
        admin.define_tags("new", "TRIAL")
    assert [tag["tag"] for tag in admin.tags()] == ["Trial"]


def test_inspection_shows_tag_names_sorted(api: ApiSession, admin: EmulatorClient) -> None:
    """The admin contact view lists the contact's tag names, sorted case-insensitively."""
    contact = api.contact_id("a@example.com")
    for name in ("zeta", "Alpha", "beta"):
        _tag_contact(api, contact, _create_tag(api, name))

    assert admin.contact("a@example.com")["tags"] == ["Alpha", "beta", "zeta"]  # type: ignore[index]
