"""The kernel flow against the emulator in-process, and against misbehaving cards."""

import datetime
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm import scheme as schemes
from terminal import tlv
from terminal.card import Card
from terminal.errors import CardStatusError, TapError
from terminal.reader import read_card, read_tap, terminal_data
from terminal.tap import transaction_data

PAN = "6217000010012345677"
WHEN = datetime.datetime(2026, 11, 30, 8, 15, 3, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
TERMINAL = terminal_data(200, WHEN, un=bytes.fromhex("11223344"))


def _card(**options):
    return Card.issue("pboc-3des", bytes(16), PAN, "01", **options)


def test_flow_collects_card_and_terminal_data():
    read = read_card(_card().transmit, TERMINAL)
    assert read.aid.hex().upper() == "A000000333010101"
    assert read.cdol1_data.hex().upper() == (
        "000000000200" "000000000000" "0156" "0000000000" "0156" "261130" "00" "11223344")
    assert read.elements["5A"].hex().upper() == PAN + "F"
    assert read.elements["9F36"] == b"\x00\x01" and read.elements["9F27"] == b"\x80"


def test_tap_fields_from_a_read():
    tap = read_tap(_card(atc=6).transmit, amount=200, tap_id="g1-1", gate_id="g1", station="S01",
                   direction="exit", local_time=WHEN, un=bytes.fromhex("11223344"))
    assert (tap.pan, tap.psn, tap.atc, tap.un, tap.amount, tap.currency, tap.transaction_date,
            tap.transaction_type, tap.tvr, tap.aip, tap.cid, tap.iad) == (
        PAN, "01", 7, "11223344", 200, "156", datetime.date(2026, 11, 30), "00", "0000000000",
        "1800", "80", "07010103A0000001")


class T0Card:
    """Wraps a card to answer like a T=0 card: 61xx then GET RESPONSE, and 6Cxx for a wrong Le."""

    def __init__(self, card):
        self.card, self.pending, self.log = card, b"", []

    def transmit(self, apdu):
        self.log.append(apdu[:2].hex().upper())
        if apdu[1] == 0xC0:
            data, self.pending = self.pending, b""
            return data + b"\x90\x00"
        if apdu[1] == 0xB2 and apdu[-1] == 0x00:
            response = self.card.transmit(apdu)
            return b"\x6C" + bytes([len(response) - 2])
        response = self.card.transmit(apdu)
        if response[-2:] == b"\x90\x00" and len(response) > 2:
            self.pending = response[:-2]
            return b"\x61" + bytes([len(self.pending) & 0xFF])
        return response


def test_t0_get_response_and_wrong_le_are_followed():
    card = T0Card(_card())
    read = read_card(card.transmit, TERMINAL)
    assert read.elements["9F26"]
    assert "00C0" in card.log and card.log.count("00B2") == 4  # each record asked twice


def test_format_1_responses_are_understood():
    inner = _card()

    def transmit(apdu):
        response = inner.transmit(apdu)
        if apdu[1] in (0xA8, 0xAE) and response[-2:] == b"\x90\x00":
            found = tlv.primitives(tlv.decode(response[:-2]))
            if apdu[1] == 0xA8:
                value = found["82"] + found["94"]
            else:
                value = found["9F27"] + found["9F36"] + found["9F26"] + found["9F10"]
            return tlv.Tlv("80", value).encode() + b"\x90\x00"
        return response

    read = read_card(transmit, TERMINAL)
    assert read.elements["82"] == bytes.fromhex("1800") and len(read.elements["9F26"]) == 8


def test_pdol_data_is_built_from_terminal_data():
    card = _card(pdol=bytes.fromhex("9F66049F02069F37049F4E05"))
    seen = []

    def transmit(apdu):
        seen.append(apdu)
        return card.transmit(apdu)

    read_card(transmit, TERMINAL)
    gpo = next(apdu for apdu in seen if apdu[1] == 0xA8)
    assert gpo.hex().upper() == ("80A8000015" "8313" "26000080" "000000000200" "11223344" "0000000000" "00")


def test_application_selection_by_priority_and_fallback():
    card = _card()
    ppse = tlv.template("6F", tlv.primitive("84", b"2PAY.SYS.DDF01"), tlv.template("A5", tlv.template(
        "BF0C",
        tlv.template("61", tlv.primitive("4F", bytes.fromhex("A0000003330101")), tlv.primitive("87", b"\x02")),
        tlv.template("61", tlv.primitive("4F", bytes.fromhex("A0000009990101")), tlv.primitive("87", b"\x01")),
        tlv.template("61", tlv.primitive("4F", card.aid), tlv.primitive("87", b"\x03")),
    )))
    selected = []

    def transmit(apdu):
        if apdu[1] == 0xA4 and apdu[5:-1] == b"2PAY.SYS.DDF01":
            return ppse.encode() + b"\x90\x00"
        if apdu[1] == 0xA4:
            selected.append(apdu[5:-1].hex().upper())
        return card.transmit(apdu)

    assert read_card(transmit, TERMINAL).aid == card.aid
    assert selected == ["A0000009990101", "A0000003330101", card.aid.hex().upper()]


def test_error_status_names_the_command():
    with pytest.raises(CardStatusError, match=r"SELECT PPSE: card answered 6A82 \(file or application not found\)") as caught:
        read_card(lambda apdu: b"\x6A\x82", TERMINAL)
    assert caught.value.sw == 0x6A82


@pytest.mark.parametrize("mangle, message", [
    (lambda apdu, r: b"\x6F\x02\x84\x10\x90\x00" if apdu[5:7] == b"2P" else r, "not valid BER-TLV: offset 2"),
    (lambda apdu, r: b"\x6F\x00\x90\x00" if apdu[5:7] == b"2P" else r, "SELECT PPSE: no application"),
    (lambda apdu, r: bytes.fromhex("77048202180090" "00") if apdu[1] == 0xA8 else r, "tag 94 (AFL) missing"),
    (lambda apdu, r: bytes.fromhex("770A8202180094040001020090 00".replace(" ", "")) if apdu[1] == 0xA8 else r,
     "tag 94 (AFL): entry 0 is invalid"),
    (lambda apdu, r: r.replace(bytes.fromhex("8C15"), bytes.fromhex("8E15")) if apdu[1] == 0xB2 else r,
     "tag 8C (CDOL1): missing"),
])
def test_misbehaving_cards_give_clear_errors(mangle, message):
    card = _card()
    with pytest.raises(TapError, match=re.escape(message)):
        read_card(lambda apdu: mangle(apdu, card.transmit(apdu)), TERMINAL)


def test_aac_card_gives_tap_error():
    card = _card()

    def transmit(apdu):
        response = card.transmit(apdu)
        return response.replace(b"\x9f\x27\x01\x80", b"\x9f\x27\x01\x00")

    with pytest.raises(TapError, match=r"tag 9F27 \(CID\): card returned AAC \(declined\), expected an ARQC"):
        read_tap(transmit, amount=1, tap_id="x", gate_id="g", station="s", direction="single", local_time=WHEN)


def test_amount_out_of_range_is_refused():
    with pytest.raises(TapError, match="amount: -1 outside"):
        terminal_data(-1, WHEN)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(schemes.SCHEMES)), st.integers(0, 999_999_999_999), st.binary(min_size=4, max_size=4),
       st.dates(datetime.date(2000, 1, 1), datetime.date(2099, 12, 31)), st.integers(0, 65000))
def test_any_transaction_gives_a_tap_whose_arqc_verifies(scheme_name, amount, un, day, atc):
    imk = bytes(range(16))
    card = Card.issue(scheme_name, imk, PAN, "01", atc=atc)
    when = datetime.datetime.combine(day, datetime.time(12), WHEN.tzinfo)
    tap = read_tap(card.transmit, amount=amount, tap_id="t", gate_id="g", station="s", direction="single",
                   local_time=when, un=un)
    assert (tap.amount, tap.un, tap.transaction_date, tap.atc) == (amount, un.hex().upper(), day, atc + 1)
    scheme = schemes.SCHEMES[scheme_name]
    session = schemes.session_key(scheme, schemes.icc_master_key(scheme, imk, PAN, "01"), tap.atc.to_bytes(2, "big"),
                                  un=un if scheme.session_key_derivation == "mastercard" else b"")
    assert schemes.verify_application_cryptogram(
        scheme, session, transaction_data(tap, scheme.session_key_derivation), bytes.fromhex(tap.arqc))
