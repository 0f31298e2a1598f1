"""worker.field_values: values formatted for the field's type, and checked against options."""

from __future__ import annotations

import pytest

from worker.field_values import FieldDefinition, InvalidFieldValue, format_value


def field(kind: str, *options: str) -> FieldDefinition:
    return FieldDefinition(
        id="6", title="Shirt size", perstag="SHIRT_SIZE", type=kind, options=options
    )


@pytest.mark.parametrize(
    ("kind", "value", "sent"),
    [
        ("date", "2008-01-20", "2008-01-20"),
        ("date", "2008-01-20T23:30:00+02:00", "2008-01-20"),
        ("datetime", "2020-05-19T02:45:00.123456-05:00", "2020-05-19T02:45:00-05:00"),
        ("datetime", "2020-05-19T02:45:00+00:00", "2020-05-19T02:45:00+00:00"),
        ("text", "anything || at all", "anything || at all"),
        ("number", "42", "42"),
        ("hidden", "x", "x"),
        ("textarea", "two\nlines", "two\nlines"),
    ],
)
def test_values_are_formatted_for_the_type(kind: str, value: str, sent: str) -> None:
    """Dates become YYYY-MM-DD, datetimes whole seconds with their offset; free text is sent as given."""
    assert format_value(field(kind), value) == sent


def test_multi_value_fields_take_lists_and_single_values() -> None:
    """checkbox and listbox send ||a||b||; a single option becomes ||a||; each must be an option."""
    for kind in ("checkbox", "listbox"):
        definition = field(kind, "S", "M", "L")
        assert format_value(definition, "||S||L||") == "||S||L||"
        assert format_value(definition, "M") == "||M||"
        with pytest.raises(InvalidFieldValue, match="'XL' is not an option") as caught:
            format_value(definition, "||S||XL||")
        assert caught.value.reason == "invalid_option"


def test_single_choice_fields_check_their_options() -> None:
    """dropdown and radio accept exactly one of their options (case matters, as in ActiveCampaign's values)."""
    for kind in ("dropdown", "radio"):
        definition = field(kind, "Small", "Large")
        assert format_value(definition, "Large") == "Large"
        with pytest.raises(InvalidFieldValue, match="SHIRT_SIZE") as caught:
            format_value(definition, "large")
        assert caught.value.reason == "invalid_option"


def test_an_empty_value_clears_any_field() -> None:
    """ "" is a real value that clears the field, whatever its type and options."""
    for kind in ("date", "datetime", "dropdown", "listbox", "text"):
        assert format_value(field(kind, "A"), "") == ""


def test_bad_moments_are_invalid_values() -> None:
    """A date that does not parse, or a datetime without an offset, is refused with invalid_value."""
    with pytest.raises(InvalidFieldValue) as caught:
        format_value(field("date"), "20/01/2008")
    assert caught.value.reason == "invalid_value"
    with pytest.raises(InvalidFieldValue, match="no UTC offset"):
        format_value(field("datetime"), "2020-05-19T02:45:00")
