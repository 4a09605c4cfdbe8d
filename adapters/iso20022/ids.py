"""Message ids and EndToEndIds that fit ISO 20022's 35 characters and trace back to the
ledger.

A 128-bit id (a ledger transfer id, an outbox message id) is written in base 36
(``0-9A-Z``, 25 characters for any 128-bit value, zero-padded), after a fixed prefix and
followed by one ISO 7064 MOD 37-36 check character over prefix and digits. The hybrid
MOD 37-36 system (rather than MOD 37-2) keeps the check character in ``0-9A-Z``, so ids
stay inside the SWIFT "X" character set banks accept and are safe as file names. Encoding
runs once per transfer (a million per large batch), so it works two digits at a time from
a table; decoding checks with ``python-stdnum``, and the tests hold the two to the same
answers. The encoding is reversible, so an EndToEndId in a bank's pacs.002, pacs.004 or
camt.053 gives back the transfer id without any lookup table; a mistyped or foreign id
fails the check character.

``EndToEndId`` = ``"OC"`` + 25 digits + check = 28 characters (Max35Text).
``MsgId`` = 4-character kind (e.g. ``P008``) + 25 digits + check = 30 characters.
"""

from __future__ import annotations

import functools
import re
import secrets
import time

from stdnum.iso7064 import mod_37_36

from adapters.errors import IdentifierError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ID_BITS = 128
DIGITS = 25
END_TO_END_PREFIX = "OC"
KIND_LENGTH = 4
ISO_TEXT_LENGTH_MAX = 35

assert 36**DIGITS >= 2**ID_BITS > 36 ** (DIGITS - 1)
assert len(END_TO_END_PREFIX) + DIGITS + 1 <= ISO_TEXT_LENGTH_MAX
assert KIND_LENGTH + DIGITS + 1 <= ISO_TEXT_LENGTH_MAX

_KIND = re.compile(r"^[A-Z0-9]{4}$")
_RADIX = len(ALPHABET)
_CHECK_START = _RADIX // 2


def _step(check: int, value: int) -> int:
    # One step of ISO 7064 MOD 37-36 (hybrid system), as python-stdnum computes it.
    return ((check or _RADIX) * 2 % (_RADIX + 1) + value) % _RADIX


# _PAIR_STEPS[check * 36**2 + pair] is the check state after the two digits of ``pair``.
_PAIR_STEPS = [_step(_step(check, pair // _RADIX), pair % _RADIX)
               for check in range(_RADIX) for pair in range(_RADIX**2)]
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]
_PAIR_RANGE = _RADIX**2
# An id's lowest digit pairs are encoded each time, the rest (_head) cached.
_TAIL_PAIRS = 4
_TAIL = _PAIR_RANGE**_TAIL_PAIRS
_HEADS_CACHED = 256
assert (DIGITS - 1) % 2 == 0 and 0 < _TAIL_PAIRS < (DIGITS - 1) // 2


def end_to_end_id(transfer_id: int) -> str:
    """The EndToEndId (28 characters) of a 128-bit ledger transfer id.

    >>> end_to_end_id(1)
    'OC00000000000000000000000013'
    >>> transfer_id_from_end_to_end_id(end_to_end_id(2**128 - 1)) == 2**128 - 1
    True
    """
    return _encode(END_TO_END_PREFIX, transfer_id)


def transfer_id_from_end_to_end_id(text: str) -> int:
    """The ledger transfer id encoded in an EndToEndId made by :func:`end_to_end_id`.

    Raises
    ------
    IdentifierError
        Wrong length, prefix or characters, a failed check character, or a value over
        128 bits (e.g. an EndToEndId the engine did not make).
    """
    return _decode(END_TO_END_PREFIX, text, "EndToEndId")


def message_id(kind: str, number: int) -> str:
    """The MsgId (30 characters) of message ``number`` (128-bit) of ``kind``.

    ``kind`` is 4 characters of ``[A-Z0-9]`` naming the message, e.g. ``P008``, ``P002``,
    ``P004``, ``N002`` (pain.002), ``C053``.

    >>> message_id("P008", 255)
    'P00800000000000000000000000738'
    """
    if not _KIND.match(kind or ""):
        raise IdentifierError(f"message kind {kind!r} must be 4 characters of [A-Z0-9]")
    return _encode(kind, number)


def number_from_message_id(kind: str, text: str) -> int:
    """The number encoded in a MsgId made by :func:`message_id` with the same ``kind``.

    Raises
    ------
    IdentifierError
        As :func:`transfer_id_from_end_to_end_id`.
    """
    return _decode(kind, text, "MsgId")


def new_message_id(kind: str) -> str:
    """A fresh MsgId whose number is time-ordered: 48 bits of Unix milliseconds then 80
    random bits (UUIDv7 layout without version bits), so ids sort by creation time and
    never repeat in practice."""
    number = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return message_id(kind, number)


def _encode(prefix: str, number: int) -> str:
    if type(number) is not int or not 0 <= number < 2**ID_BITS:
        raise IdentifierError(f"id {number!r} must be an int in 0..2**128-1")
    high, low = divmod(number, _TAIL)
    head, check = _head(prefix, high)
    # The tail's four digit pairs, unrolled: this runs once per payment of a batch.
    pair_3, low = divmod(low, _PAIR_RANGE**3)
    pair_2, low = divmod(low, _PAIR_RANGE**2)
    pair_1, pair_0 = divmod(low, _PAIR_RANGE)
    check = _PAIR_STEPS[check * _PAIR_RANGE + pair_3]
    check = _PAIR_STEPS[check * _PAIR_RANGE + pair_2]
    check = _PAIR_STEPS[check * _PAIR_RANGE + pair_1]
    check = _PAIR_STEPS[check * _PAIR_RANGE + pair_0]
    return (head + _PAIRS[pair_3] + _PAIRS[pair_2] + _PAIRS[pair_1] + _PAIRS[pair_0]
            + ALPHABET[(1 - (check or _RADIX) * 2 % (_RADIX + 1)) % _RADIX])


@functools.lru_cache(maxsize=_HEADS_CACHED)
def _head(prefix: str, high: int) -> tuple[str, int]:
    """The text and check state of ``prefix`` and the digits above the tail: ids made in a
    row (a batch's transfers, base id + line; MsgIds of one millisecond) share them."""
    pairs = []
    for _ in range((DIGITS - 1) // 2 - _TAIL_PAIRS):
        high, remainder = divmod(high, _PAIR_RANGE)
        pairs.append(remainder)
    assert high < _RADIX, "128 bits fit in 25 base-36 digits"
    check = _CHECK_START
    for ch in prefix + ALPHABET[high]:
        check = _step(check, ALPHABET.index(ch))
    parts = [prefix, ALPHABET[high]]
    for pair in reversed(pairs):
        check = _PAIR_STEPS[check * _PAIR_RANGE + pair]
        parts.append(_PAIRS[pair])
    return "".join(parts), check


def _decode(prefix: str, text: str, field: str) -> int:
    if not isinstance(text, str) or len(text) != len(prefix) + DIGITS + 1:
        raise IdentifierError(f"{field} {text!r}: must be {len(prefix) + DIGITS + 1} characters")
    if not text.startswith(prefix):
        raise IdentifierError(f"{field} {text!r}: must start with {prefix!r}")
    body = text[len(prefix):-1]
    if any(ch not in ALPHABET for ch in body):
        raise IdentifierError(f"{field} {text!r}: digits must be 0-9 or A-Z")
    if not mod_37_36.is_valid(text):
        raise IdentifierError(f"{field} {text!r}: check character does not match")
    number = int(body, 36)
    if number >= 2**ID_BITS:
        raise IdentifierError(f"{field} {text!r}: more than 128 bits")
    return number
