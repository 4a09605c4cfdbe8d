import datetime

import pytest
from hypothesis import given, strategies as st
from stdnum.cn import ric

from engine.disbursement.resident_id import IdCheck, check_character, check_id, id_key, normalise_id

TODAY = datetime.date(2026, 1, 1)

# Valid and invalid examples from identity/cn_identity_numbers.md (synthetic numbers).
CASES = [
    ("510121195803142150", IdCheck.valid),
    ("510112198711023688", IdCheck.valid),
    ("51340119720505003X", IdCheck.valid),
    ("51340119720505003x", IdCheck.valid),          # lower-case x is normalised
    ("５１０１２１１９５８０３１４２１５０", IdCheck.valid),  # full-width digits
    ("\t510121195803142150 ", IdCheck.valid),       # leading tab from an export trick
    ("510112198711023689", IdCheck.invalid_checksum),
    ("110105199001011000", IdCheck.invalid_checksum),  # Excel zeroed the last digits
    ("510112198702292157", IdCheck.invalid_format),    # 1987-02-29 does not exist
    ("510112203001012152", IdCheck.invalid_format),    # born in the future
    ("51011219871102368", IdCheck.invalid_format),     # 17 characters
    ("510112871102368", IdCheck.invalid_format),       # legacy 15 digits
    ("5101 2119 5803 1421 50", IdCheck.invalid_format),
    ("", IdCheck.invalid_format),
    ("5.10104E+17", IdCheck.scientific_notation),
    ("5.10104e+17", IdCheck.scientific_notation),
    ("5.10121195803142E17", IdCheck.scientific_notation),
    ("99010119870101215X", IdCheck.valid),  # address codes are not checked (see module)
    ("510107198701011233", IdCheck.invalid_checksum),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_identity_number_table(text, expected):
    assert check_id(normalise_id(text), TODAY)[0] is expected


def test_zeroed_digits_detail_names_excel():
    check, detail = check_id("110105199001011000", TODAY)
    assert check is IdCheck.invalid_checksum and "Excel" in detail and "110105" not in detail


def test_historical_county_code_is_accepted_where_stdnum_refuses():
    first17 = "51010719870101123"
    number = first17 + check_character(first17)
    assert check_id(number, TODAY) == (IdCheck.valid, "")


@given(st.text(max_size=40))
def test_check_never_raises(text):
    check, _detail = check_id(normalise_id(text), TODAY)
    assert isinstance(check, IdCheck)


@given(st.dates(min_value=datetime.date(1900, 1, 1), max_value=TODAY), st.integers(0, 999))
def test_valid_numbers_agree_with_stdnum_checksum(birth, order):
    first17 = f"510104{birth:%Y%m%d}{order:03d}"
    number = first17 + check_character(first17)
    assert check_id(number, TODAY) == (IdCheck.valid, "")
    assert ric.calc_check_digit(number) == number[-1]
    assert id_key(number) < 2**63
