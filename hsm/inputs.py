"""Checking the inputs of the cryptographic functions: lengths, hex text, digits.

Every check raises a :class:`ValueError` whose message names the field and the reason
and never echoes the value (it may be key material or a PAN).
"""

from __future__ import annotations

import binascii

PAN_DIGITS_MIN = 8
PAN_DIGITS_MAX = 19
assert PAN_DIGITS_MIN < PAN_DIGITS_MAX


def require_length(field: str, value: bytes, *lengths: int) -> bytes:
    """Return ``value`` if it is bytes of one of ``lengths``.

    >>> require_length("atc", b"\\x00\\x01", 2)
    b'\\x00\\x01'
    >>> require_length("atc", b"\\x01", 2)
    Traceback (most recent call last):
    ...
    ValueError: atc must be 2 bytes, got 1
    """
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{field} must be bytes, got {type(value).__name__}")
    if len(value) not in lengths:
        expected = " or ".join(str(length) for length in lengths)
        raise ValueError(f"{field} must be {expected} bytes, got {len(value)}")
    return bytes(value)


def from_hex(field: str, text: str, *lengths: int) -> bytes:
    """Decode hex ``text`` (either case) to bytes, checking the byte length if given.

    >>> from_hex("atc", "00ff", 2)
    b'\\x00\\xff'
    >>> from_hex("arqc", "12345G7890ABCDEF", 8)
    Traceback (most recent call last):
    ...
    ValueError: arqc must be hex digits (0-9, A-F)
    >>> from_hex("arqc", "ABC", 8)
    Traceback (most recent call last):
    ...
    ValueError: arqc must be an even number of hex digits, got 3
    """
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a hex string, got {type(text).__name__}")
    if len(text) % 2:
        raise ValueError(f"{field} must be an even number of hex digits, got {len(text)}")
    if not all(character in "0123456789abcdefABCDEF" for character in text):
        raise ValueError(f"{field} must be hex digits (0-9, A-F)")
    value = binascii.unhexlify(text)
    return require_length(field, value, *lengths) if lengths else value


def require_digits(field: str, text: str, length_min: int, length_max: int) -> str:
    """Return ``text`` if it is ``length_min`` to ``length_max`` ASCII decimal digits.

    >>> require_digits("psn", "01", 2, 2)
    '01'
    >>> require_digits("pan", "4761 7390", 8, 19)
    Traceback (most recent call last):
    ...
    ValueError: pan must be 8 to 19 decimal digits
    """
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a string of digits, got {type(text).__name__}")
    if not is_digits(text, length_min, length_max):
        size = str(length_min) if length_min == length_max else f"{length_min} to {length_max}"
        raise ValueError(f"{field} must be {size} decimal digits")
    return text


def is_digits(text: str, length_min: int, length_max: int) -> bool:
    """Whether the string ``text`` is ``length_min`` to ``length_max`` ASCII decimal digits.

    >>> is_digits("0123", 2, 4), is_digits("０１", 2, 4), is_digits("1", 2, 4)
    (True, False, False)
    """
    return length_min <= len(text) <= length_max and text.isascii() and text.isdigit()


def is_pan(text: str) -> bool:
    """Whether the string ``text`` is a PAN :func:`require_pan` takes (8 to 19 digits).

    >>> is_pan("4761739001010010"), is_pan("4761 7390")
    (True, False)
    """
    return is_digits(text, PAN_DIGITS_MIN, PAN_DIGITS_MAX)


def require_pan(pan: str) -> str:
    """Return ``pan`` if it is a primary account number of 8 to 19 digits (ISO/IEC 7812)."""
    return require_digits("pan", pan, PAN_DIGITS_MIN, PAN_DIGITS_MAX)


def require_psn(psn: str) -> str:
    """Return ``psn`` if it is a PAN sequence number of two digits (EMV tag 5F34)."""
    return require_digits("psn", psn, 2, 2)
