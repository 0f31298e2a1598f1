"""Admin routes that read and define the catalogs: /_emulator/fields, tags, lists, accounts.

`POST` takes `{"<kind>": [...]}` and answers 200 with the definitions it added, all or
none; a duplicate or malformed definition is a 400 with a message. Items:
- fields: `{"title", "type", "perstag"?, "options"?}` (see fields.py); with
  `"replace": true` they replace the whole catalog and ids restart at 1;
- tags: a name, or `{"tag", "tagType"?, "description"?}`;
- lists: a name, or `{"name", "stringid"?}`;
- accounts: a name, or `{"name"}`.
Defining here costs no API request, so it neither counts against the rate limit nor
shows in the request log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fake_activecampaign import inspection
from fake_activecampaign.catalogs import (
    AccountRecord,
    Catalog,
    DuplicateName,
    ListRecord,
    TagRecord,
)
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.fields import FieldConfigError
from fake_activecampaign.state import AccountState

__all__ = ["AdminCatalogs"]

R = TypeVar("R", TagRecord, ListRecord, AccountRecord)
AdminHandler = Callable[[Request], Reply]


class _BadDefinition(ValueError):
    pass


class AdminCatalogs:
    def __init__(self, *, state: AccountState, prefix: str) -> None:
        self._state = state
        self._prefix = prefix

    def routes(self) -> dict[tuple[str, str], AdminHandler]:
        p = self._prefix
        return {
            ("GET", f"{p}/fields"): self._fields,
            ("POST", f"{p}/fields"): self._define_fields,
            ("GET", f"{p}/tags"): self._tags,
            ("POST", f"{p}/tags"): self._define_tags,
            ("GET", f"{p}/lists"): self._lists,
            ("POST", f"{p}/lists"): self._define_lists,
            ("GET", f"{p}/accounts"): self._accounts,
            ("POST", f"{p}/accounts"): self._define_accounts,
        }

    def _fields(self, _request: Request) -> Reply:
        return Reply(200, [inspection.field_definition(f) for f in self._state.fields.all()])

    def _define_fields(self, request: Request) -> Reply:
        body = request.body
        specs = body.get("fields") if isinstance(body, dict) else None
        replace = body.get("replace", False) if isinstance(body, dict) else False
        if not isinstance(specs, list) or not isinstance(replace, bool):
            return Reply(400, {"message": 'expected {"fields": [...], "replace": false}'})
        try:
            added = self._state.fields.define(specs, replace=replace, now_s=time.time())
        except FieldConfigError as exc:
            return Reply(400, {"message": str(exc)})
        return Reply(200, [inspection.field_definition(field) for field in added])

    def _tags(self, _request: Request) -> Reply:
        return Reply(200, [inspection.tag_definition(t) for t in self._state.tags.all()])

    def _define_tags(self, request: Request) -> Reply:
        return _define(request, "tags", self._state.tags, _tag_maker, inspection.tag_definition)

    def _lists(self, _request: Request) -> Reply:
        return Reply(200, [inspection.list_definition(r) for r in self._state.lists.all()])

    def _define_lists(self, request: Request) -> Reply:
        return _define(request, "lists", self._state.lists, _list_maker, inspection.list_definition)

    def _accounts(self, _request: Request) -> Reply:
        return Reply(200, [inspection.account_definition(a) for a in self._state.accounts.all()])

    def _define_accounts(self, request: Request) -> Reply:
        return _define(
            request, "accounts", self._state.accounts, _account_maker, inspection.account_definition
        )


def _define(
    request: Request,
    kind: str,
    catalog: Catalog[R],
    maker: Callable[[Any, float], Callable[[str], R]],
    definition: Callable[[R], dict[str, Any]],
) -> Reply:
    items = request.body.get(kind) if isinstance(request.body, dict) else None
    if not isinstance(items, list):
        return Reply(400, {"message": f'expected {{"{kind}": [...]}}'})
    now_s = time.time()
    try:
        added = catalog.add_all([maker(item, now_s) for item in items])
    except (_BadDefinition, DuplicateName) as exc:
        return Reply(400, {"message": str(exc)})
    return Reply(200, [definition(record) for record in added])


def _tag_maker(item: Any, now_s: float) -> Callable[[str], TagRecord]:
    spec = _spec(item, "tag")
    name = _text(spec, "tag")
    tag_type = _text(spec, "tagType", "contact")
    description = _text(spec, "description", "")
    return lambda id_: TagRecord(id_, name, tag_type, description, now_s)


def _list_maker(item: Any, now_s: float) -> Callable[[str], ListRecord]:
    spec = _spec(item, "name")
    name = _text(spec, "name")
    stringid = _text(spec, "stringid", re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
    return lambda id_: ListRecord(id_, name, stringid, now_s)


def _account_maker(item: Any, now_s: float) -> Callable[[str], AccountRecord]:
    name = _text(_spec(item, "name"), "name")
    return lambda id_: AccountRecord(id_, name, now_s)


def _spec(item: Any, name_key: str) -> Mapping[str, Any]:
    """A definition as a mapping: a bare string is its name."""
    if isinstance(item, str):
        return {name_key: item}
    if not isinstance(item, Mapping):
        raise _BadDefinition(f"each definition must be a name or an object with {name_key!r}")
    return item


def _text(spec: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise _BadDefinition(f"{key} must be a non-empty string")
    return value
