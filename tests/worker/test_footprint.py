"""worker.footprint: tags, lists and the company, each confirmed on its own (fake API, no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.errors import ApiRejected, ApiServerError
from worker.footprint import Footprint, Progress


class FakeCatalog:
    def __init__(
        self, tags: dict[str, str] | None = None, accounts: dict[str, str] | None = None
    ) -> None:
        self.tags = {k.casefold(): v for k, v in (tags or {}).items()}
        self.accounts = {k.casefold(): v for k, v in (accounts or {}).items()}
        self.remembered: list[tuple[str, str, str]] = []

    def tag_id(self, name: str) -> str | None:
        return self.tags.get(name.casefold())

    def account_id(self, name: str) -> str | None:
        return self.accounts.get(name.casefold())

    def remember(self, kind: str, item_id: str, name: str) -> None:
        self.remembered.append((kind, item_id, name))
        (self.tags if kind == "tags" else self.accounts)[name.casefold()] = item_id


class FakeApi:
    """Records calls; ``fail`` maps a method name to the error its n-th call raises."""

    def __init__(self, *, fail: dict[tuple[str, int], Exception] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail = fail or {}
        self.existing_tags: dict[str, str] = {}

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        count = sum(1 for called, _ in self.calls if called == name)
        if (name, count) in self.fail:
            raise self.fail[(name, count)]

    def create_tag(self, name: str) -> str:
        self._record("create_tag", name)
        return "t-new"

    def find_tag(self, name: str) -> str | None:
        self._record("find_tag", name)
        return self.existing_tags.get(name)

    def add_tag(self, contact_id: str, tag_id: str) -> None:
        self._record("add_tag", contact_id, tag_id)

    def contact_tags(self, contact_id: str) -> dict[str, str]:
        self._record("contact_tags", contact_id)
        return {"t1": "ct1"}

    def remove_tag(self, link: str) -> None:
        self._record("remove_tag", link)

    def set_list_status(self, contact_id: str, list_id: str, status: str) -> None:
        self._record("set_list_status", contact_id, list_id, status)

    def account_links(self, contact_id: str) -> dict[str, str]:
        self._record("account_links", contact_id)
        return {"link-old": "a-old"}

    def unlink_account(self, link: str) -> None:
        self._record("unlink_account", link)

    def link_account(self, contact_id: str, account_id: str) -> None:
        self._record("link_account", contact_id, account_id)


def send(
    api: FakeApi, catalog: FakeCatalog, attributes: dict[str, str]
) -> tuple[Progress, list[str]]:
    slots: list[str] = []
    progress = Progress(contact_id="42")
    Footprint(api, catalog, take_slot=slots.append).send(attributes, progress)  # type: ignore[arg-type]
    return progress, slots


def test_every_request_takes_a_slot_and_every_attribute_is_confirmed() -> None:
    """Adds, removes, a list and a company move: one limiter slot per request, each attribute confirmed."""
    api, catalog = (
        FakeApi(),
        FakeCatalog(tags={"Old": "t1", "VIP": "t2"}, accounts={"Acme": "a-new"}),
    )
    progress, slots = send(
        api,
        catalog,
        {"tag:vip": "1VIP", "tag:old": "0Old", "list:3": "1", "account": "Acme"},
    )
    assert sorted(progress.confirmed) == ["account", "list:3", "tag:old", "tag:vip"]
    assert len(slots) == len(api.calls) == sum(progress.requests.values())
    assert ("remove_tag", ("ct1",)) in api.calls
    assert ("unlink_account", ("link-old",)) in api.calls
    assert ("link_account", ("42", "a-new")) in api.calls
    assert progress.steps == {
        "account": "linked",
        "list:3": "subscribed",
        "tag:old": "removed",
        "tag:vip": "added",
    }


def test_a_create_refused_because_the_name_exists_looks_it_up() -> None:
    """Another worker created the tag first: the 422 is answered by finding it, and the catalog remembers it."""
    api = FakeApi(fail={("create_tag", 1): ApiRejected(422, ["Duplicate entry"])})
    api.existing_tags["Trial"] = "t-theirs"
    catalog = FakeCatalog()
    progress, _ = send(api, catalog, {"tag:trial": "1Trial"})
    assert progress.confirmed == ["tag:trial"]
    assert ("add_tag", ("42", "t-theirs")) in api.calls
    assert catalog.remembered == [("tags", "t-theirs", "Trial")]


def test_a_refused_create_of_a_name_nobody_has_is_raised() -> None:
    """A 422 that is not a duplicate (the lookup finds nothing) stays an error."""
    api = FakeApi(fail={("create_tag", 1): ApiRejected(422, ["Invalid name"])})
    with pytest.raises(ApiRejected):
        send(api, FakeCatalog(), {"tag:trial": "1Trial"})


def test_a_failure_part_way_keeps_what_was_confirmed() -> None:
    """The tag call gets a 503 after the list call succeeded: the list is confirmed, the tag is not, and the error rises for the retry."""
    api = FakeApi(fail={("add_tag", 1): ApiServerError(503, [])})
    progress = Progress(contact_id="42")
    with pytest.raises(ApiServerError):
        Footprint(api, FakeCatalog(tags={"VIP": "t2"}), take_slot=lambda kind: None).send(  # type: ignore[arg-type]
            {"list:3": "1", "tag:vip": "1VIP"}, progress
        )
    assert progress.confirmed == ["list:3"]
    assert progress.steps == {"list:3": "subscribed", "tag:vip": "failed"}


def test_removing_a_tag_the_account_does_not_have_costs_no_request() -> None:
    """A removal of a tag that does not exist in the account: nothing to send, confirmed at once."""
    api = FakeApi()
    progress, slots = send(api, FakeCatalog(), {"tag:ghost": "0Ghost"})
    assert (progress.confirmed, api.calls, slots) == (["tag:ghost"], [], [])
    assert progress.steps == {"tag:ghost": "absent"}
