"""Batch HMACs of the data keys against the standard library's HMAC (RFC 2104)."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, strategies as st

from hsm.datakeys import DATA_KEY_SIZE, message_macs, pan_token, pan_tokens


@given(st.binary(min_size=DATA_KEY_SIZE, max_size=DATA_KEY_SIZE), st.lists(st.binary(max_size=200), max_size=5))
def test_message_macs_are_hmac_sha256(key: bytes, messages: list[bytes]) -> None:
    assert message_macs(key, messages) == [hmac.new(key, m, hashlib.sha256).digest() for m in messages]


@given(st.lists(st.text("0123456789", min_size=8, max_size=19), max_size=5))
def test_pan_tokens_are_pan_token_of_each(pans: list[str]) -> None:
    key = bytes(range(DATA_KEY_SIZE))
    assert pan_tokens(key, pans) == [pan_token(key, p) for p in pans]


def test_known_answer() -> None:
    # RFC 4231 test case 1's message under a 32-byte key of 0x0b (its key is 20 bytes).
    assert message_macs(b"\x0b" * DATA_KEY_SIZE, [b"Hi There"])[0].hex() == (
        "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7")
