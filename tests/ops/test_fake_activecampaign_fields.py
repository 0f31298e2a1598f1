"""Custom field definitions: the paged catalog, options, and field values on sync."""

from __future__ import annotations

import pytest

from fake_activecampaign import EmulatorClient
from tests.ops.helpers import ApiSession

FIELDS = "/api/3/fields"
FIELD_TYPES = {
    "text", "textarea", "date", "datetime", "dropdown", "radio", "checkbox", "listbox",
    "hidden", "number",
}  # fmt: skip
# The keys of a field in the API's published "list all custom fields" example.
FIELD_KEYS = [
    "title", "descript", "type", "isrequired", "perstag", "defval", "show_in_list", "rows",
    "cols", "visible", "service", "ordernum", "cdate", "udate", "options", "relations",
    "links", "id",
]  # fmt: skip
OPTION_KEYS = {"field", "label", "value", "orderid", "isdefault", "id"}


def _catalog(count: int) -> list[dict[str, str]]:
    return [{"title": f"Field {n}", "type": "text"} for n in range(count)]


def test_default_catalog_has_every_type_and_no_multiselect(api: ApiSession) -> None:
    """The constructed fields cover all ten documented types; multiselect is not one."""
    fields = api.get(FIELDS, params={"limit": 100}).json()["fields"]

    assert {field["type"] for field in fields} == FIELD_TYPES
    assert [list(field) for field in fields] == [FIELD_KEYS] * len(fields)
    assert (fields[0]["id"], fields[5]["id"], fields[5]["type"]) == ("1", "6", "date")


def test_listing_shape_sideloads_options_and_relations(api: ApiSession) -> None:
    """A page lists fields, its fields' options in fieldOptions, fieldRels and meta.total."""
    body = api.get(FIELDS, params={"limit": 100}).json()

    assert list(body) == ["fieldOptions", "fieldRels", "fields", "meta"]
    shirt = next(field for field in body["fields"] if field["perstag"] == "SHIRT_SIZE")
    options = [o for o in body["fieldOptions"] if o["field"] == shirt["id"]]
    assert [o["value"] for o in options] == ["S", "M", "L", "XL"]
    assert shirt["options"] == [o["id"] for o in options]
    assert all(set(option) >= OPTION_KEYS for option in options)
    assert [rel["field"] for rel in body["fieldRels"]] == [f["id"] for f in body["fields"]]
    assert body["meta"] == {"total": "11"}


def test_a_catalog_of_250_fields_takes_three_pages_of_100(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """250 fields at limit=100: pages of 100, 100 and 50, total "250" on each, then empty."""
    admin.define_fields(_catalog(250), replace=True)

    pages = [
        api.get(FIELDS, params={"limit": 100, "offset": offset}).json()
        for offset in (0, 100, 200, 300)
    ]

    assert [len(page["fields"]) for page in pages] == [100, 100, 50, 0]
    assert {page["meta"]["total"] for page in pages} == {"250"}
    ids = [field["id"] for page in pages for field in page["fields"]]
    assert ids == [str(n) for n in range(1, 251)]


@pytest.mark.parametrize(
    ("params", "count"),
    [({}, 20), ({"limit": 0}, 20), ({"limit": 500}, 100), ({"limit": "x"}, 20), ({"limit": 7}, 7)],
)
def test_page_size_defaults_to_20_and_is_capped_at_100(
    api: ApiSession, admin: EmulatorClient, params: dict[str, object], count: int
) -> None:
    """Without limit a page has 20 fields; a limit above 100 gives 100."""
    admin.define_fields(_catalog(150), replace=True)
    assert len(api.get(FIELDS, params=params).json()["fields"]) == count


def test_perstag_filter_is_a_contains_match(api: ApiSession, admin: EmulatorClient) -> None:
    """filters[perstag] keeps near misses too, so a client has to check what comes back."""
    admin.define_fields(
        [{"title": "Size", "type": "text"}, {"title": "Shirt size", "type": "text"}], replace=True
    )

    body = api.get(FIELDS, params={"filters[perstag]": "size"}).json()
    exact = api.get(FIELDS, params={"filters[perstag]": "%SHIRT_SIZE%"}).json()

    assert [field["perstag"] for field in body["fields"]] == ["SIZE", "SHIRT_SIZE"]
    assert body["meta"] == {"total": "2"}
    assert [field["perstag"] for field in exact["fields"]] == ["SHIRT_SIZE"]


def test_options_endpoint_lists_a_fields_options(api: ApiSession, admin: EmulatorClient) -> None:
    """GET /fields/{id}/options answers every option with its label, value and order."""
    field = admin.define_field("Colour", type="listbox", options=["Red", "Green"], perstag="COLOUR")

    options = api.get(f"{FIELDS}/{field['id']}/options").json()["fieldOptions"]

    assert [(o["label"], o["value"], o["orderid"]) for o in options] == [
        ("Red", "Red", "1"),
        ("Green", "Green", "2"),
    ]
    assert {o["field"] for o in options} == {field["id"]}


def test_one_field_and_unknown_field_ids(api: ApiSession) -> None:
    """GET /fields/{id} answers the field; an unknown id is a 404 naming the field."""
    one = api.get(f"{FIELDS}/4").json()
    assert one["field"]["perstag"] == "SHIRT_SIZE"
    assert len(one["fieldOptions"]) == 4
    for path in (f"{FIELDS}/999", f"{FIELDS}/999/options"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {"message": "No Result found for Field with id 999"}


def test_admin_defines_fields_with_derived_perstags(admin: EmulatorClient) -> None:
    """Defined fields get the next ids and a perstag from the title unless one is given."""
    added = admin.define_fields(
        [
            {"title": "Favourite colour", "type": "dropdown", "options": ["Red", "Blue"]},
            {"title": "Code", "type": "hidden", "perstag": "%PROMO_CODE%"},
        ]
    )

    assert [(f["id"], f["perstag"]) for f in added] == [
        ("12", "FAVOURITE_COLOUR"),
        ("13", "PROMO_CODE"),
    ]
    assert added[0]["options"] == ["Red", "Blue"]
    assert admin.fields()[-2:] == added


@pytest.mark.parametrize(
    "fields",
    [
        [{"title": "Company", "type": "text"}],
        [{"title": "New", "perstag": "company"}],
        [{"title": "A"}, {"title": "a"}],
        [{"title": "Tags", "type": "multiselect"}],
        [{"title": "Notes 2", "type": "text", "options": ["x"]}],
        [{"title": "Pick", "type": "radio", "options": ["x", "x"]}],
        [{"title": ""}],
        [{"title": "X", "colour": "red"}],
    ],
    ids=[
        "dup-title",
        "dup-perstag",
        "dup-in-batch",
        "multiselect",
        "text-options",
        "dup-option",
        "no-title",
        "unknown-key",
    ],
)
def test_admin_refuses_bad_field_definitions(
    admin: EmulatorClient, fields: list[dict[str, object]]
) -> None:
    """Duplicates (any case), unknown types and misplaced options are refused, all or none."""
    before = admin.fields()
    with pytest.raises(ValueError, match=r"."):
        admin.define_fields(fields)
    assert admin.fields() == before


def test_reset_restores_the_default_fields(admin: EmulatorClient) -> None:
    """POST /_emulator/reset brings the constructed catalog back."""
    default = admin.fields()
    admin.define_fields(_catalog(3), replace=True)

    admin.reset()

    assert admin.fields() == default


def test_values_for_unknown_fields_are_stored_and_counted(
    api: ApiSession, admin: EmulatorClient
) -> None:
    """A value for an id the catalog lacks is stored as sent and counted, not refused."""
    admin.define_fields(_catalog(2), replace=True)

    response = api.sync({"email": "a@example.com", "fieldValues": [{"field": "6", "value": "x"}]})

    assert response.status_code == 201
    assert admin.contacts()["a@example.com"]["fieldValues"] == {"6": "x"}
    assert admin.stats()["unknown_field_values"] == 1


@pytest.mark.parametrize(
    ("field", "value", "malformed"),
    [
        ("6", "2008-01-20", False),
        ("6", "20/01/2008", True),
        ("6", "2008-02-30", True),
        ("7", "2020-05-19T02:45:00-05:00", False),
        ("7", "2020-05-19T02:45:00Z", False),
        ("7", "2020-05-19T02:45:00.123456+00:00", True),
        ("7", "2020-05-19T02:45:00", True),
        ("4", "M", False),
        ("4", "XXL", True),
        ("8", "||Events||Offers||", False),
        ("8", "||Events||", False),
        ("8", "Events", True),
        ("8", "||Events||Parties||", True),
        ("9", "||Weekly||", False),
        ("11", "12", False),
        ("11", "twelve", True),
        ("1", "anything at all", False),
        ("4", "", False),
    ],
)
def test_values_outside_their_types_form_are_stored_and_counted(
    api: ApiSession, admin: EmulatorClient, field: str, value: str, malformed: bool
) -> None:
    """Values not in the documented form of their type are stored but counted as malformed."""
    api.sync({"email": "a@example.com", "fieldValues": [{"field": field, "value": value}]})

    assert admin.contacts()["a@example.com"]["fieldValues"] == {field: value}
    assert admin.stats()["malformed_field_values"] == int(malformed)
