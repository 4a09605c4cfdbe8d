import pytest

from engine.disbursement.bank_card import BinTable, compact_pan
from engine.disbursement.errors import CardNumberError


@pytest.fixture(scope="module")
def bins(shared_data):
    return BinTable.load({"ONECARD_REFERENCE_DATA": str(shared_data)})


# Examples from identity/cn_identity_numbers.md.
@pytest.mark.parametrize(("pan", "bank", "length"), [
    ("6222026465816998396", "ICBC", 19),
    ("6214825837354017807", "CDCB", 19),
    ("6259083065450331", "BOC", 16),
    ("438588601327931884", "CIB", 18),
])
def test_issuer_lookup(bins, pan, bank, length):
    entry = bins.lookup(pan)
    assert (entry.bank_code, entry.length) == (bank, length)


@pytest.mark.parametrize(("pan", "message"), [
    ("6222026465816998397", "Luhn"),
    ("6222026465816993", "its BIN issues 19"),
    ("6222 026465816998396", "digits"),
    ("12345678903", "12 to 19 digits"),
    ("1000000000000000009", "not in the BIN table"),
])
def test_bad_card_numbers(bins, pan, message):
    with pytest.raises(CardNumberError, match=message) as caught:
        bins.lookup(pan)
    assert pan not in str(caught.value)


def test_shared_prefix_is_resolved_by_length(bins):
    # 622302 is GDRCC with 16 digits and ICBC with 18.
    from stdnum import luhn

    sixteen, eighteen = "622302" + "0" * 9, "622302" + "0" * 11
    assert bins.lookup(sixteen + luhn.calc_check_digit(sixteen)).bank_code == "GDRCC"
    assert bins.lookup(eighteen + luhn.calc_check_digit(eighteen)).bank_code == "ICBC"


def test_compact_pan_removes_separators_and_full_width():
    assert compact_pan(" ６２２２-0264 6581 6998 396") == "6222026465816998396"
