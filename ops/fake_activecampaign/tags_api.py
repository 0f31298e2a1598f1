"""Tags and a contact's tags: `/tags`, `/contactTags` and `/contacts/{id}/contactTags`.

Documented: the search is a contains match; a duplicate name (any letter case) is refused
with an error naming the duplicate entry; adding a tag to an unknown contact is a 404;
`DELETE /contactTags/{id}` answers 200 `{}`, or 404
`{"message": "No Result found for SubscriberTag with id N"}` when it is gone.
Assumed (see README.md):
- the search ignores letter case;
- the duplicate answer is a 422 with the body a user reported,
  `{"message": "Could not process request", "error": "Duplicate entry 'contact-NAME' for key
  'typetag'"}` (the status was not reported);
- re-adding a tag the contact has answers 201 with the existing contactTag;
- `/contacts/{id}/contactTags` is unpaged, and an unknown contact or tag is a 404 naming
  "Subscriber" or "Tag" the way the documented SubscriberTag message does;
- a missing `tag` or `contact` attribute is a 422 in the documented errors shape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fake_activecampaign import bodies, schema
from fake_activecampaign.catalogs import DuplicateName, TagRecord, name_matches
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.inputs import required_input
from fake_activecampaign.links import ContactTag
from fake_activecampaign.paging import listing
from fake_activecampaign.router import Route
from fake_activecampaign.state import AccountState

__all__ = ["TagEndpoints", "tag_body"]


def tag_body(tag: TagRecord) -> dict[str, Any]:
    """A tag as the API shows it."""
    return {
        "tagType": tag.tag_type,
        "tag": tag.name,
        "description": tag.description,
        "cdate": bodies.ac_timestamp(tag.created_at),
        "id": tag.id,
    }


class TagEndpoints:
    def __init__(self, *, state: AccountState, base_url: str) -> None:
        self._state = state
        self._base_url = base_url

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("GET", "/api/3/tags", self._search),
            Route("POST", "/api/3/tags", self._create),
            Route("POST", "/api/3/contactTags", self._add_to_contact),
            Route("GET", "/api/3/contacts/{contact}/contactTags", self._of_contact),
            Route("DELETE", "/api/3/contactTags/{contactTag}", self._remove),
        )

    def _search(self, request: Request, _params: Mapping[str, str]) -> Reply:
        search = request.query_value("search")
        tags = [tag for tag in self._state.tags.all() if name_matches(tag.name, search)]
        return listing("tags", tags, request, tag_body)

    def _create(self, request: Request, _params: Mapping[str, str]) -> Reply:
        parsed = required_input(request.body, "tag", ("tag",))
        if isinstance(parsed, Reply):
            return parsed
        wanted, name = parsed[0], parsed[1]["tag"]
        tag_type = schema.text_value(wanted.get("tagType")) or "contact"
        description = schema.text_value(wanted.get("description")) or ""
        now_s = time.time()
        try:
            tag = self._state.tags.add(
                lambda id_: TagRecord(id_, name, tag_type, description, now_s)
            )
        except DuplicateName:
            error = f"Duplicate entry '{tag_type}-{name}' for key 'typetag'"
            return Reply(422, {"message": "Could not process request", "error": error})
        return Reply(201, {"tag": tag_body(tag)})

    def _add_to_contact(self, request: Request, _params: Mapping[str, str]) -> Reply:
        parsed = required_input(request.body, "contactTag", ("contact", "tag"))
        if isinstance(parsed, Reply):
            return parsed
        ids = parsed[1]
        contact_id, tag_id = ids["contact"], ids["tag"]
        if self._state.contacts.get_by_id(contact_id) is None:
            return Reply(404, bodies.not_found("Subscriber", contact_id))
        if self._state.tags.get(tag_id) is None:
            return Reply(404, bodies.not_found("Tag", tag_id))
        link = self._state.links.add_tag(contact=contact_id, tag=tag_id, now_s=time.time())
        return Reply(201, {"contactTag": self._link_body(link)})

    def _of_contact(self, _request: Request, params: Mapping[str, str]) -> Reply:
        contact_id = params["contact"]
        if self._state.contacts.get_by_id(contact_id) is None:
            return Reply(404, bodies.not_found("Subscriber", contact_id))
        links = self._state.links.tags_of(contact_id)
        return Reply(200, {"contactTags": [self._link_body(link) for link in links]})

    def _remove(self, _request: Request, params: Mapping[str, str]) -> Reply:
        if self._state.links.remove_tag(params["contactTag"]) is None:
            return Reply(404, bodies.not_found("SubscriberTag", params["contactTag"]))
        return Reply(200, {})

    def _link_body(self, link: ContactTag) -> dict[str, Any]:
        links_base = f"{self._base_url}/api/3/contactTags/{link.id}"
        return {
            "cdate": bodies.ac_timestamp(link.created_at),
            "contact": link.contact,
            "id": link.id,
            "links": {"contact": f"{links_base}/contact", "tag": f"{links_base}/tag"},
            "tag": link.tag,
        }
