"""The catalogs, links, routing and paging as plain objects: no HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fake_activecampaign.catalogs import Catalog, DuplicateName, TagRecord, name_matches
from fake_activecampaign.exchange import Reply
from fake_activecampaign.fields import FieldCatalog, FieldConfigError
from fake_activecampaign.links import AlreadyLinked, ContactLinks
from fake_activecampaign.paging import page_bounds
from fake_activecampaign.router import Route, Router


def _tag(name: str, tag_type: str = "contact") -> Callable[[str], TagRecord]:
    return lambda id_: TagRecord(id_, name, tag_type, "", 0.0)


def _router() -> Router:
    def answer(_request: object, _params: object) -> Reply:
        return Reply(200)

    return Router(
        [
            Route("GET", "/api/3/tags", answer),
            Route("GET", "/api/3/contacts/{contact}/contactTags", answer),
            Route("DELETE", "/api/3/contactTags/{contactTag}", answer),
        ]
    )


def test_router_hands_path_segments_to_the_route_by_name() -> None:
    """A {name} segment matches one non-empty segment; a trailing slash is ignored."""
    resolved = _router().resolve("GET", "/api/3/contacts/7/contactTags/")

    assert resolved is not None
    assert resolved[0].template == "/api/3/contacts/{contact}/contactTags"
    assert resolved[1] == {"contact": "7"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/3/contacts//contactTags"),
        ("GET", "/api/3/contacts/7/contactTags/extra"),
        ("POST", "/api/3/tags"),
        ("GET", "/api/3/contactTags/1"),
    ],
)
def test_router_resolves_nothing_else(method: str, path: str) -> None:
    """Empty segments, extra segments and other methods do not match."""
    assert _router().resolve(method, path) is None


def test_template_for_ignores_the_method_and_falls_back_to_the_path() -> None:
    """Stats group by template whatever the method; unknown paths stay as they are."""
    router = _router()
    assert router.template_for("/api/3/contactTags/12") == "/api/3/contactTags/{contactTag}"
    assert router.template_for("/api/3/deals/1") == "/api/3/deals/1"


@pytest.mark.parametrize(
    ("limit", "offset", "bounds"),
    [
        (None, None, (20, 0)),
        ("100", "200", (100, 200)),
        ("101", "-5", (100, 0)),
        ("0", "x", (20, 0)),
    ],
)
def test_page_bounds(limit: str | None, offset: str | None, bounds: tuple[int, int]) -> None:
    """limit defaults to 20 and is capped at 100; bad or negative offsets are 0."""
    assert page_bounds(limit, offset) == bounds


def test_catalog_add_all_is_all_or_none_and_wastes_no_ids() -> None:
    """A duplicate anywhere in a batch adds nothing; the next record gets the next id."""
    tags: Catalog[TagRecord] = Catalog()
    tags.add(_tag("Trial"))

    with pytest.raises(DuplicateName) as caught:
        tags.add_all([_tag("new"), _tag("TRIAL")])

    assert caught.value.existing.name == "Trial"
    assert [tag.name for tag in tags.all()] == ["Trial"]
    assert tags.add(_tag("new")).id == "2"


def test_tag_names_are_unique_per_tag_type() -> None:
    """The same name may exist once per tagType, as the observed 'typetag' key implies."""
    tags: Catalog[TagRecord] = Catalog()
    tags.add(_tag("Trial"))
    assert tags.add(_tag("trial", "template")).id == "2"


@pytest.mark.parametrize(
    ("name", "query", "matches"),
    [("Trial started", "TRIAL", True), ("Trial", None, True), ("Paid", "trial", False)],
)
def test_name_matches_is_contains_in_any_case(name: str, query: str | None, matches: bool) -> None:
    """Searches are contains matches, ignoring letter case; no query matches everything."""
    assert name_matches(name, query) is matches


def test_links_keep_one_tag_link_one_status_per_list_and_one_account() -> None:
    """add_tag returns the existing link; set_list_status reports the previous status."""
    links = ContactLinks()
    first = links.add_tag(contact="1", tag="5", now_s=1.0)
    assert links.add_tag(contact="1", tag="5", now_s=2.0) == first

    assert links.set_list_status(contact="1", list_id="3", status=2, now_s=1.0)[1] is None
    membership, previous = links.set_list_status(contact="1", list_id="3", status=1, now_s=2.0)
    assert (membership.status, previous) == (1, 2)

    links.link_account(contact="1", account="8", job_title="", now_s=1.0)
    with pytest.raises(AlreadyLinked):
        links.link_account(contact="1", account="9", job_title="", now_s=2.0)


def test_field_catalog_define_is_all_or_none() -> None:
    """A bad spec anywhere leaves the catalog as it was; replace restarts ids at 1."""
    catalog = FieldCatalog()
    before = catalog.all()
    with pytest.raises(FieldConfigError):
        catalog.define([{"title": "Fine"}, {"title": "Bad", "type": "multiselect"}], now_s=0.0)
    assert catalog.all() == before

    [only] = catalog.define(
        [{"title": "Only", "type": "checkbox", "options": ["a"]}], replace=True, now_s=0.0
    )

    assert (only.id, only.options[0].id, [f.id for f in catalog.all()]) == ("1", "1", ["1"])
