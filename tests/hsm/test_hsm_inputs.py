"""Property tests of the input parsers: hex, lengths, digits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm.inputs import from_hex, require_digits, require_length


@given(st.binary(max_size=64), st.booleans())
def test_hex_round_trips_in_either_case(value: bytes, upper: bool) -> None:
    text = value.hex().upper() if upper else value.hex()
    assert from_hex("field", text) == value
    assert from_hex("field", text, len(value)) == value


@given(st.text(max_size=40))
def test_from_hex_accepts_exactly_hex_text(text: str) -> None:
    is_hex = len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)
    if is_hex:
        assert from_hex("field", text).hex() == text.lower()
    else:
        with pytest.raises(ValueError, match="^field must be"):
            from_hex("field", text)


@given(st.binary(max_size=20))
def test_wrong_lengths_name_the_field_and_never_echo_the_value(value: bytes) -> None:
    if len(value) == 8:
        assert require_length("arqc", value, 8) == value
        return
    with pytest.raises(ValueError) as caught:
        require_length("arqc", value, 8)
    assert str(caught.value) == f"arqc must be 8 bytes, got {len(value)}"


@pytest.mark.parametrize("value", [None, 12, "0012", bytearray(b"ab")])
def test_non_bytes_are_refused_cleanly(value) -> None:
    if isinstance(value, bytearray):
        assert require_length("atc", value, 2) == b"ab"
    else:
        with pytest.raises(ValueError, match="atc must be bytes"):
            require_length("atc", value, 2)


@given(st.text(max_size=25))
def test_digits(text: str) -> None:
    valid = 8 <= len(text) <= 19 and text.isascii() and text.isdigit()
    if valid:
        assert require_digits("pan", text, 8, 19) == text
    else:
        with pytest.raises(ValueError, match="pan must be 8 to 19 decimal digits"):
            require_digits("pan", text, 8, 19)
