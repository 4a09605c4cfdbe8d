"""End to end through pcsc-lite: pyscard -> pcscd -> vpcd driver -> TCP -> our card emulator."""

import datetime

import pytest

from hsm import scheme as schemes
from terminal.card import Card
from terminal.errors import ReaderError
from terminal.reader import PcscReader, read_tap
from terminal.tap import transaction_data
from terminal.vpcd import VpcdLink, wait_until_card_gone

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PAN = "6217000010012345677"
LOCAL = datetime.timezone(datetime.timedelta(hours=8))


def _tap(reader, number):
    with reader:
        return read_tap(reader.transmit, amount=300, tap_id=f"t{number}", gate_id="g1", station="S01",
                        direction="entry", local_time=datetime.datetime(2026, 11, 30, 8, 0, number, tzinfo=LOCAL))


def _verifies(scheme_name, tap):
    scheme = schemes.SCHEMES[scheme_name]
    key = schemes.icc_master_key(scheme, IMK, tap.pan, tap.psn)
    un = bytes.fromhex(tap.un) if scheme.session_key_derivation == "mastercard" else b""
    session = schemes.session_key(scheme, key, tap.atc.to_bytes(2, "big"), un=un)
    data = transaction_data(tap, scheme.session_key_derivation)
    return schemes.verify_application_cryptogram(scheme, session, data, bytes.fromhex(tap.arqc))


@pytest.mark.parametrize("scheme_name", sorted(schemes.SCHEMES))
def test_tap_through_pcscd_for_every_scheme(pcscd_virtual_reader, scheme_name):
    card = Card.issue(scheme_name, IMK, PAN, "01", atc=9)
    with VpcdLink(card) as link:
        first = _tap(PcscReader(pcscd_virtual_reader), 1)
        second = _tap(PcscReader(pcscd_virtual_reader), 2)
        assert link.apdus_served >= 2 * 6
    assert (first.pan, first.psn, first.atc, second.atc, first.amount) == (PAN, "01", 10, 11, 300)
    assert first.cdol1 == "9F02069F03069F1A0295055F2A029A039C019F3704"
    assert _verifies(scheme_name, first) and _verifies(scheme_name, second)
    assert first.un != second.un


def test_no_card_presented_is_a_reader_error(pcscd_virtual_reader):
    wait_until_card_gone()
    with pytest.raises(ReaderError, match="no card presented within 0.3 s"):
        with PcscReader(pcscd_virtual_reader, card_wait_s=0.3):
            pass


def test_unknown_reader_name_is_a_reader_error(pcscd_virtual_reader):
    with pytest.raises(ReaderError, match="no PC/SC reader matching 'Nonexistent'"):
        with PcscReader("Nonexistent"):
            pass
