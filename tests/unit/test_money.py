"""Money: Decimal amounts in an ISO 4217 currency with that currency's minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collections_es.domain.errors import RuleViolationError
from collections_es.domain.money import MAX_AMOUNT, check_currency, format_money, minor_units, to_money


def refused(rule_id: str, value: object, currency: str = "CNY", **kwargs) -> RuleViolationError:
    with pytest.raises(RuleViolationError) as info:
        to_money(value, currency, **kwargs)
    assert info.value.rule_id == rule_id, info.value.detail
    return info.value


# ---- currencies -------------------------------------------------------------


@pytest.mark.parametrize("code", ["CNY", "USD", "EUR", "JPY", "KWD", "GBP", "CHF"])
def test_a_known_iso_4217_code_is_accepted(code):
    assert check_currency(code) == code


@pytest.mark.parametrize(
    "code", ["XYZ", "usd", "Usd", "US", "USDD", "", "   ", "12$", None, 840, "€"], ids=repr
)
def test_anything_but_a_known_upper_case_iso_4217_code_is_refused(code):
    with pytest.raises(RuleViolationError) as info:
        check_currency(code)
    assert info.value.rule_id == "money.currency"
    assert info.value.field == "currency"


def test_the_refused_currency_names_the_field_it_came_from():
    with pytest.raises(RuleViolationError) as info:
        check_currency("xyz", field="invoice.currency")
    assert info.value.field == "invoice.currency"


@pytest.mark.parametrize(("code", "places"), [("CNY", 2), ("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3)])
def test_minor_units_come_from_the_currency_table(code, places):
    assert minor_units(code) == places


def test_minor_units_of_an_unknown_currency_are_refused():
    with pytest.raises(RuleViolationError) as info:
        minor_units("XYZ")
    assert info.value.rule_id == "money.currency"


# ---- amounts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("10", "CNY", "10.00"),
        ("10.5", "CNY", "10.50"),
        ("10.55", "CNY", "10.55"),
        ("10.000", "CNY", "10.00"),  # trailing zeros are not extra precision
        (Decimal("5"), "CNY", "5.00"),
        (7, "CNY", "7.00"),
        ("1E+2", "CNY", "100.00"),
        ("100", "JPY", "100"),
        ("100.0", "JPY", "100"),
        ("1.005", "KWD", "1.005"),
        ("1", "KWD", "1.000"),
        ("0.001", "KWD", "0.001"),
    ],
)
def test_an_amount_is_quantized_to_the_currencys_minor_units(value, currency, expected):
    money = to_money(value, currency)
    assert isinstance(money, Decimal)
    assert format_money(money) == expected
    assert money.as_tuple().exponent == -minor_units(currency)


@pytest.mark.parametrize(
    ("value", "currency"),
    [("10.001", "CNY"), ("0.005", "USD"), ("100.5", "JPY"), ("1.0005", "KWD"), ("1e-30", "CNY")],
)
def test_more_decimals_than_the_currency_has_are_refused_never_rounded(value, currency):
    err = refused("money.precision", value, currency)
    assert err.field == "amount"


@pytest.mark.parametrize("value", [10.0, 0.1, 1e3, float("nan"), float("inf")])
def test_a_float_is_refused_for_money(value):
    refused("money.not_decimal", value)


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_refused_for_money(value):
    refused("money.not_decimal", value)


@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("Infinity")])
def test_nan_and_infinity_are_refused(value):
    refused("money.format", value)


@pytest.mark.parametrize("value", ["", "abc", "10,00", "1.2.3", "ten", None, "10 CNY"])
def test_text_that_is_not_a_decimal_is_refused(value):
    refused("money.format", value)


@pytest.mark.parametrize("value", ["0", "0.00", "-0", "-1", "-0.01"])
def test_zero_and_negative_amounts_are_refused(value):
    refused("money.positive", value)


def test_zero_is_accepted_where_the_caller_allows_it():
    assert to_money("0", "CNY", allow_zero=True) == Decimal("0.00")
    refused("money.positive", "-0.01", allow_zero=True)


def test_negative_zero_is_normalised_to_zero():
    assert format_money(to_money("-0", "CNY", allow_zero=True)) == "0.00"


def test_an_amount_above_the_maximum_is_refused():
    assert to_money(MAX_AMOUNT, "CNY") == MAX_AMOUNT
    refused("money.too_large", MAX_AMOUNT + 1)
    refused("money.too_large", "1e999999999")


def test_a_huge_amount_with_too_many_decimals_is_refused_as_a_rule_violation():
    # once raised decimal.InvalidOperation from quantize()
    refused("money.too_large", "1000000000000000000000000000.001")
    refused("money.too_large", "-1000000000000000000000000000.001")


def test_the_refusal_names_the_field_it_came_from():
    err = refused("money.precision", "1.001", field="installments[2].amount")
    assert err.field == "installments[2].amount"


def test_an_unknown_currency_is_refused_before_the_amount_is_read():
    refused("money.currency", "10", "XYZ")
    refused("money.currency", "10", "cny")


def test_format_money_never_uses_an_exponent():
    assert format_money(to_money("1E+6", "CNY")) == "1000000.00"
    assert format_money(to_money("1E+6", "JPY")) == "1000000"


@settings(max_examples=200, deadline=None)
@given(
    currency=st.sampled_from(["CNY", "JPY", "KWD"]),
    units=st.integers(min_value=1, max_value=10**14),
)
def test_any_amount_within_the_currencys_precision_round_trips_exactly(currency, units):
    places = minor_units(currency)
    value = Decimal(units).scaleb(-places)
    if value > MAX_AMOUNT:
        refused("money.too_large", str(value), currency)
        return
    money = to_money(str(value), currency)
    assert money == value
    assert to_money(format_money(money), currency) == money


@settings(max_examples=200, deadline=None)
@given(
    currency=st.sampled_from(["CNY", "JPY", "KWD"]),
    units=st.integers(min_value=1, max_value=10**9),
    extra=st.integers(min_value=1, max_value=9),
)
def test_any_amount_with_one_digit_too_many_is_refused(currency, units, extra):
    places = minor_units(currency)
    value = Decimal(units).scaleb(-places) + Decimal(extra).scaleb(-places - 1)
    refused("money.precision", str(value), currency)
