"""Money on the wire: exact decimals out, exact minor units in, nothing rounded."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.errors import AmountError
from adapters.iso20022 import money


@pytest.mark.parametrize("amount_minor, currency, text", [
    (0, "CNY", "0.00"), (1, "CNY", "0.01"), (10, "CNY", "0.10"), (12345, "CNY", "123.45"),
    (9852986999, "CNY", "98529869.99"), (2700, "JPY", "2700"), (1, "BHD", "0.001"),
    (10**18 - 1, "CNY", "9999999999999999.99"),
])
def test_format_and_parse_are_exact_inverses(amount_minor, currency, text):
    assert money.format_amount(amount_minor, currency) == text
    assert money.parse_amount(text, currency) == amount_minor


@pytest.mark.parametrize("text, currency", [
    ("12.345", "CNY"), ("0.0000000000005", "CNY"), ("0.00003000", "CNY"), ("1.5", "JPY"),
    ("98529.8699999", "CNY"),
])
def test_too_many_decimals_is_refused_naming_the_element(text, currency):
    with pytest.raises(AmountError, match=r"^InstdAmt \(line 12\): .* more decimals than"):
        money.parse_amount(text, currency, element="InstdAmt", line=12)


@pytest.mark.parametrize("text", ["", " ", "-1.00", "+1", "1e3", "NaN", "Infinity", "1.2.3",
                                  "１２", "0x10"])
def test_non_plain_decimals_are_refused(text):
    with pytest.raises(AmountError, match="IntrBkSttlmAmt"):
        money.parse_amount(text, "CNY", element="IntrBkSttlmAmt")


def test_trailing_zeros_are_exact_and_accepted():
    assert money.parse_amount("12.340", "CNY") == 1234
    assert money.parse_amount("2700.00", "JPY") == 2700


def test_unknown_currency_and_bad_minor_amounts_are_refused():
    with pytest.raises(AmountError, match="XXX"):
        money.format_amount(1, "XXX")
    for bad in (-1, 10**18, 1.5, True):
        with pytest.raises(AmountError):
            money.format_amount(bad, "CNY")


def test_control_sum_of_tenths_is_exact():
    total = sum((money.as_decimal(fen, "CNY") for fen in (10, 20, 30)), Decimal(0))
    assert money.format_decimal(total) == "0.60"
    assert total == Decimal("0.60")


@given(st.integers(min_value=0, max_value=10**18 - 1), st.sampled_from(sorted(money.CURRENCY_MINOR_UNITS)))
def test_round_trip_property(amount_minor, currency):
    text = money.format_amount(amount_minor, currency)
    assert "e" not in text.lower()
    assert len(text.partition(".")[2]) == money.minor_unit(currency)
    assert money.parse_amount(text, currency) == amount_minor
