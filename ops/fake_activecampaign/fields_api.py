"""`GET /api/3/fields` (paged), `GET /api/3/fields/{id}` and `GET /api/3/fields/{id}/options`.

Shapes follow the reference and the API's published examples: a field's `options` and
`relations` hold ids, and the option and relation objects come beside the fields, in
`fieldOptions` and `fieldRels`. Assumptions, because no example shows them filled in:
- the listing sideloads the options of the fields on its page (and only those);
- each field has one relation, to every list (`relid` "0"), with the field's id;
- `/options` answers `{"fieldOptions": [...]}`, every option of the field, unpaged;
- `filters[perstag]=X` keeps fields whose perstag contains X in any letter case (the
  reference says to check the perstag of what comes back, so the emulator returns near
  misses too); X is compared without `%` signs;
- an unknown field id is a 404 `{"message": "No Result found for Field with id N"}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fake_activecampaign import bodies
from fake_activecampaign.bodies import ac_timestamp
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.fields import FieldCatalog, FieldOption, FieldRecord
from fake_activecampaign.paging import page_of
from fake_activecampaign.router import Route

__all__ = ["FieldEndpoints"]


class FieldEndpoints:
    def __init__(self, *, fields: FieldCatalog, base_url: str) -> None:
        self._fields = fields
        self._base_url = base_url

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("GET", "/api/3/fields", self._list),
            Route("GET", "/api/3/fields/{field}", self._one),
            Route("GET", "/api/3/fields/{field}/options", self._options),
        )

    def _list(self, request: Request, _params: Mapping[str, str]) -> Reply:
        fields = self._fields.all()
        perstag = request.query_value("filters[perstag]")
        if perstag is not None:
            wanted = perstag.strip("%").casefold()
            fields = [field for field in fields if wanted in field.perstag.casefold()]
        page, total = page_of(fields, request)
        body = {**self._sideloads(page), "fields": [self._field(f) for f in page]}
        return Reply(200, {**body, "meta": {"total": str(total)}})

    def _one(self, _request: Request, params: Mapping[str, str]) -> Reply:
        field = self._fields.get(params["field"])
        if field is None:
            return Reply(404, bodies.not_found("Field", params["field"]))
        return Reply(200, {**self._sideloads([field]), "field": self._field(field)})

    def _options(self, _request: Request, params: Mapping[str, str]) -> Reply:
        field = self._fields.get(params["field"])
        if field is None:
            return Reply(404, bodies.not_found("Field", params["field"]))
        return Reply(200, {"fieldOptions": [self._option(o, field) for o in field.options]})

    def _sideloads(self, fields: Sequence[FieldRecord]) -> dict[str, Any]:
        return {
            "fieldOptions": [self._option(o, f) for f in fields for o in f.options],
            "fieldRels": [_relation(field) for field in fields],
        }

    def _field(self, field: FieldRecord) -> dict[str, Any]:
        stamp = ac_timestamp(field.created_at)
        links_base = f"{self._base_url}/api/3/fields/{field.id}"
        return {
            "title": field.title,
            "descript": "",
            "type": field.type,
            "isrequired": "0",
            "perstag": field.perstag,
            "defval": "",
            "show_in_list": "0",
            "rows": "0",
            "cols": "0",
            "visible": "1",
            "service": "",
            "ordernum": field.id,
            "cdate": stamp,
            "udate": stamp,
            "options": [option.id for option in field.options],
            "relations": [field.id],
            "links": {"options": f"{links_base}/options", "relations": f"{links_base}/relations"},
            "id": field.id,
        }

    def _option(self, option: FieldOption, field: FieldRecord) -> dict[str, Any]:
        stamp = ac_timestamp(field.created_at)
        return {
            "field": option.field,
            "orderid": str(option.orderid),
            "value": option.value,
            "label": option.label,
            "isdefault": "0",
            "cdate": stamp,
            "udate": stamp,
            "links": {"field": f"{self._base_url}/api/3/fieldOptions/{option.id}/field"},
            "id": option.id,
        }


def _relation(field: FieldRecord) -> dict[str, Any]:
    return {
        "field": field.id,
        "relid": "0",
        "dorder": "0",
        "cdate": ac_timestamp(field.created_at),
        "links": [],
        "id": field.id,
    }
