"""The Tap wire message: decoding checks, building from card data, and the MACed bytes."""

import datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.errors import TapError
from terminal.reader import read_card, terminal_data
from terminal.card import Card
from terminal.tap import EXAMPLE_TAP_JSON, Tap, mac_input, tap_from_card, transaction_data

WHEN = datetime.datetime(2026, 11, 30, 8, 15, 3, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
DECODER = msgspec.json.Decoder(Tap)


def _example(**changes):
    data = msgspec.json.decode(EXAMPLE_TAP_JSON) | changes
    return msgspec.json.encode(data)


def test_example_decodes_and_reencodes():
    tap = DECODER.decode(EXAMPLE_TAP_JSON)
    assert (tap.pan, tap.atc, tap.amount, tap.local_time.utcoffset()) == (
        "6217000010012345677", 1, 200, datetime.timedelta(hours=8))
    assert DECODER.decode(msgspec.json.encode(tap)) == tap


def test_hex_case_does_not_matter_for_the_maced_bytes():
    upper = DECODER.decode(EXAMPLE_TAP_JSON)
    lower = DECODER.decode(_example(iad="07010103a0000001", arqc="0123456789abcdef",
                                    cdol1_data=upper.cdol1_data.lower()))
    assert transaction_data(upper, "pboc") == transaction_data(lower, "pboc")


@pytest.mark.parametrize("changes, message", [
    (dict(pan="6217000010012345678"), "pan: Luhn check digit is wrong"),
    (dict(amount=201), "cdol1_data: tag 9F02 differs from the tap's field (000000000200 != 000000000201)"),
    (dict(un="11223345"), "cdol1_data: tag 9F37 differs"),
    (dict(transaction_date="2026-12-01"), "cdol1_data: tag 9A differs"),
    (dict(currency="840"), "cdol1_data: tag 5F2A differs"),
    (dict(cdol1_data="00"), "cdol1_data: 1 bytes, but cdol1 lists 29"),
    (dict(cdol1="9F02069F"), "cdol1: offset 3: tag truncated"),
    (dict(amount=-1), "Expected `int` >= 0 - at `$.amount`"),
    (dict(direction="sideways"), "Invalid enum value 'sideways' - at `$.direction`"),
    (dict(local_time="2026-11-30T08:15:03"), "Expected `datetime` with a timezone component - at `$.local_time`"),
    (dict(arqc="0123"), "Expected `str` matching regex"),
    (dict(tap_id="bad id with spaces"), "at `$.tap_id`"),
    (dict(extra=1), "Object contains unknown field `extra`"),
    # What the engine prices and what makes a cryptogram fresh must be under the ARQC.
    (dict(cdol1="9F03069F1A0295055F2A029A039C019F3704", cdol1_data="00" * 19 + "11223344"),
     "cdol1: lists no 9F02, so the ARQC does not cover it"),
    (dict(cdol1="9F02069F03069F1A0295055F2A029A039C01", cdol1_data="000000000200" + "00" * 19),
     "cdol1: lists no 9F37, so the ARQC does not cover it"),
    (dict(local_time="2026-12-01T08:15:03+08:00"),
     "transaction_date: 2026-11-30 is not the date of local_time (2026-12-01)"),
    (dict(cid="00"), "cid: 00 is not an ARQC"),
    (dict(cid="40"), "cid: 40 is not an ARQC"),
])
def test_invalid_taps_are_refused_naming_the_field(changes, message):
    with pytest.raises(msgspec.ValidationError) as caught:
        DECODER.decode(_example(**changes))
    assert message in str(caught.value)


def _elements():
    card = Card.issue("emv-csk-3des", bytes(16), "6217000010012345677", "01")
    read = read_card(card.transmit, terminal_data(200, WHEN, un=b"\x01\x02\x03\x04"))
    return read.elements, read.cdol1_data


def _build(elements, cdol1_data):
    return tap_from_card(elements, cdol1_data, tap_id="t1", gate_id="g1", station="S01",
                         direction="entry", local_time=WHEN)


@pytest.mark.parametrize("tag, value, message", [
    ("5A", None, "tag 5A (Application Primary Account Number (PAN)): missing from the card's responses"),
    ("9F26", None, "tag 9F26 (Application Cryptogram): missing"),
    ("9F10", None, "tag 9F10 (Issuer Application Data (IAD)): missing"),
    ("8C", None, "tag 8C (Card Risk Management Data Object List 1 (CDOL1)): missing"),
    ("9F36", b"\x01", "tag 9F36 (Application Transaction Counter (ATC)): must be 2 bytes, got 1"),
    ("5A", bytes.fromhex("62170000100123456FFF"), "tag 5A (PAN): Luhn check digit is wrong"),
    ("5A", bytes.fromhex("12AB"), "tag 5A (PAN): must be 8 to 19 BCD digits padded with F"),
    ("5F34", b"\x0A", "tag 5F34 (PSN): must be 1 byte of BCD"),
    ("9A", bytes.fromhex("261340"), "tag 9A (transaction date): 261340 is not a YYMMDD date"),
    ("9F02", bytes.fromhex("00000000020A"), "tag 9F02 (Amount, Authorised (Numeric)): not BCD digits"),
    ("9F27", b"\x40", "tag 9F27 (CID): card returned TC, expected an ARQC"),
    ("9F10", bytes(33), "tap: Expected `str` matching regex"),
])
def test_missing_or_invalid_tags_name_the_tag(tag, value, message):
    elements, cdol1_data = _elements()
    if value is None:
        del elements[tag]
    else:
        elements[tag] = value
    with pytest.raises(TapError) as caught:
        _build(elements, cdol1_data)
    assert message in str(caught.value)


def test_missing_psn_means_00():
    elements, cdol1_data = _elements()
    del elements["5F34"]
    assert _build(elements, cdol1_data).psn == "00"


def test_mac_input_layouts_per_session_key_method():
    iad = bytes.fromhex("0110A00003220000" "AAAA")
    assert mac_input("mastercard", b"D", b"AI", b"AT", iad) == b"DAIAT" + bytes.fromhex("A00003220000")
    assert mac_input("none", b"D", b"AI", b"AT", iad) == b"DAIAT" + iad[3:7]
    assert mac_input("emv_csk", b"D", b"AI", b"AT", iad) == b"DAIAT" + iad
    with pytest.raises(ValueError, match="iad: 7 bytes, too short for the CVR at bytes 2-7"):
        mac_input("mastercard", b"", b"AI", b"AT", bytes(7))
    with pytest.raises(ValueError, match="unknown method 'x'"):
        mac_input("x", b"", b"AI", b"AT", b"")


@given(st.binary(max_size=400))
def test_arbitrary_json_bytes_never_crash_the_decoder(data):
    try:
        DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_luhn_valid_agrees_with_stdnum(digits):
    from stdnum import luhn

    from terminal.tap import luhn_valid

    assert luhn_valid(digits) == luhn.is_valid(digits)
