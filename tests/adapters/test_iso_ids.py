"""EndToEndIds and MsgIds: 35 characters at most, reversible, checked."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.iso7064 import mod_37_36

from adapters.errors import IdentifierError
from adapters.iso20022 import ids


def _reference_check(text: str) -> str:
    # ISO 7064 MOD 37-36 hybrid system, written out from the standard's recursion:
    # P1 = 36; S = (P + a) mod 36 (0 read as 36); P = 2S mod 37; check c with (P + c) mod 36 = 1.
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    product = 36
    for ch in text:
        total = (product + alphabet.index(ch)) % 36 or 36
        product = total * 2 % 37
    return alphabet[(1 - product) % 36]


@pytest.mark.parametrize("transfer_id, expected", [
    (0, "OC0000000000000000000000000" + _reference_check("OC" + "0" * 25)),
    (1, "OC0000000000000000000000001" + _reference_check("OC" + "0" * 24 + "1")),
    (35, "OC000000000000000000000000Z" + _reference_check("OC" + "0" * 24 + "Z")),
    (2**128 - 1, "OCF5LXX1ZZ5PNORYNQGLHZMSP33" + _reference_check("OCF5LXX1ZZ5PNORYNQGLHZMSP33")),
])
def test_known_answers(transfer_id, expected):
    assert ids.end_to_end_id(transfer_id) == expected
    assert mod_37_36.is_valid(expected)
    assert ids.transfer_id_from_end_to_end_id(expected) == transfer_id


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_end_to_end_id_round_trip_and_length(transfer_id):
    text = ids.end_to_end_id(transfer_id)
    assert len(text) == 28 <= 35
    assert text.isalnum() and text.isupper()
    assert mod_37_36.is_valid(text) and text[-1] == _reference_check(text[:-1])
    assert ids.transfer_id_from_end_to_end_id(text) == transfer_id


@given(st.integers(min_value=0, max_value=2**128 - 1), st.integers(min_value=2, max_value=26),
       st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_a_changed_character_fails_the_check(transfer_id, position, replacement):
    text = ids.end_to_end_id(transfer_id)
    changed = text[:position] + replacement + text[position + 1:]
    if changed != text:
        with pytest.raises(IdentifierError):
            ids.transfer_id_from_end_to_end_id(changed)


@pytest.mark.parametrize("bad", ["", "OC123", "XX" + "0" * 26, "OC" + "0" * 24 + "a0",
                                 "OC" + "Z" * 25 + _reference_check("OC" + "Z" * 25), None])
def test_malformed_end_to_end_ids_are_refused(bad):
    with pytest.raises(IdentifierError):
        ids.transfer_id_from_end_to_end_id(bad)


def test_message_ids_are_unique_ordered_and_reversible():
    made = [ids.new_message_id("P008") for _ in range(1000)]
    assert len(set(made)) == 1000 and all(len(text) == 30 for text in made)
    assert ids.number_from_message_id("P008", ids.message_id("P008", 12345)) == 12345
    with pytest.raises(IdentifierError):
        ids.message_id("p8", 1)
    with pytest.raises(IdentifierError):
        ids.number_from_message_id("P002", ids.message_id("P008", 1))
