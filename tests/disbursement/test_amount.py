from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from engine.disbursement.amount import format_minor, parse_amount, parse_amount_minor
from engine.disbursement.errors import AmountError, AmountFormatError, AmountPrecisionError

VALID = [
    ("300", 30_000),
    ("300.00", 30_000),
    ("0.07", 7),
    ("12.3", 1_230),
    ("1,234.56", 123_456),
    ("1,234,567.89", 123_456_789),
    ("￥1,234.56", 123_456),
    ("¥ 50", 5_000),
    ("50元", 5_000),
    ("¥50.00元", 5_000),
    ("１２３．４５", 12_345),
    ("１，２３４．５０", 123_450),
    ("  88.80  ", 8_880),
    ("12.340", 1_234),
    ("-3.5", -350),
    ("+3.5", 350),
    ("-¥3.5", -350),
    ("0", 0),
    ("0.00", 0),
    ("007.10", 710),
]
MALFORMED = ["", " ", "abc", "一百元", "1,23.00", "12,34", "1.2.3", "12.", ".5", "1e3",
             "¥", "元", "--5", "-¥-5", "5 5", "१२३", "1" * 65, "NaN", "Infinity", "12 .5"]
TOO_PRECISE = [("12.345", Decimal("12.345")), ("0.0000000000005", Decimal("0.0000000000005")),
               ("-0.001", Decimal("-0.001")), ("1,000.009", Decimal("1000.009"))]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_amounts_give_exact_fen(text, expected):
    assert parse_amount_minor(text) == expected
    assert type(parse_amount_minor(text)) is int


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_amounts_are_refused(text):
    with pytest.raises(AmountFormatError):
        parse_amount_minor(text)


@pytest.mark.parametrize(("text", "exact"), TOO_PRECISE)
def test_sub_fen_amounts_are_refused_not_rounded(text, exact):
    with pytest.raises(AmountPrecisionError) as caught:
        parse_amount_minor(text)
    assert caught.value.exact == exact


def test_exact_sums_have_no_float_drift():
    assert sum(parse_amount_minor(t) for t in ("0.10", "0.20", "0.30")) == 60
    assert parse_amount("0.1") + parse_amount("0.2") == parse_amount("0.3")


@given(st.text(max_size=80))
def test_any_text_gives_int_or_amount_error(text):
    try:
        value = parse_amount_minor(text)
    except AmountError:
        return
    assert type(value) is int


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_format_then_parse_round_trips(amount_minor):
    assert parse_amount_minor(format_minor(amount_minor)) == amount_minor


@given(st.integers(min_value=0, max_value=10**13), st.sampled_from(["", "¥", "￥"]),
       st.sampled_from(["", "元"]), st.booleans(), st.booleans())
def test_decorated_amounts_parse_to_the_same_fen(amount_minor, prefix, suffix, grouped, full_width):
    whole, fen = divmod(amount_minor, 100)
    number = f"{whole:,}" if grouped else str(whole)
    text = f" {prefix}{number}.{fen:02d}{suffix} "
    if full_width:
        text = text.translate(str.maketrans("0123456789,.", "０１２３４５６７８９，．"))
    assert parse_amount_minor(text) == amount_minor


def test_amounts_beyond_a_bigint_of_fen_are_refused():
    from engine.disbursement.amount import AMOUNT_MINOR_MAX

    assert parse_amount_minor("92233720368547758.07") == AMOUNT_MINOR_MAX
    assert parse_amount_minor("-92,233,720,368,547,758.07元") == -AMOUNT_MINOR_MAX
    for text in ("92233720368547758.08", "999999999999999999", "-92233720368547758.08"):
        with pytest.raises(AmountFormatError, match="at most 92233720368547758.07 yuan"):
            parse_amount_minor(text)
