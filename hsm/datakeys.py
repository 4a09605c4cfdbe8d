"""Pure functions of the data keys: bank message MACs, PAN tokens, sealed fields.

- MACs of bank messages and PAN tokens are HMAC-SHA256 (RFC 2104) under 32-byte keys.
- A sealed field is AES-256-GCM (NIST SP 800-38D) with the caller's associated data
  (e.g. the table, column and row id), so a ciphertext moved to another row does not open.
  Layout: ``01`` (format) || key version (4 bytes, big-endian) || nonce (12) ||
  ciphertext || tag (16).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm.inputs import require_length, require_pan

DATA_KEY_SIZE = 32
MAC_SIZE = 32
TOKEN_SIZE = 16
FIELD_FORMAT = 1
NONCE_SIZE = 12
TAG_SIZE = 16
FIELD_HEADER_SIZE = 1 + 4 + NONCE_SIZE
FIELD_SIZE_MAX = 64 * 1024
_HMAC_BLOCK_SIZE = 64
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))
# A longer key would be hashed first (RFC 2104 section 2); data keys never are.
assert DATA_KEY_SIZE <= _HMAC_BLOCK_SIZE
VERSION_MAX = 2**32 - 1


def message_mac(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` (32 bytes) under a 32-byte key."""
    return hmac.new(require_length("key", key, DATA_KEY_SIZE), message, hashlib.sha256).digest()


def message_macs(key: bytes, messages: Iterable[bytes]) -> list[bytes]:
    """:func:`message_mac` of each message, in order: the key's inner and outer SHA-256
    states (RFC 2104 section 2) are computed once and copied per message, a third of the
    cost of one HMAC object per message.

    >>> message_macs(bytes(32), [b"a", b""]) == [message_mac(bytes(32), m) for m in (b"a", b"")]
    True
    """
    padded = require_length("key", key, DATA_KEY_SIZE).ljust(_HMAC_BLOCK_SIZE, b"\0")
    inner = hashlib.sha256(padded.translate(_INNER_PAD))
    outer = hashlib.sha256(padded.translate(_OUTER_PAD))
    macs = []
    for message in messages:
        hashed = inner.copy()
        hashed.update(message)
        mac = outer.copy()
        mac.update(hashed.digest())
        macs.append(mac.digest())
    return macs


def macs_equal(expected: bytes, presented: bytes) -> bool:
    """Compare two MACs in constant time (a wrong length is simply unequal)."""
    return hmac.compare_digest(expected, presented)


def pan_token(key: bytes, pan: str) -> str:
    """The token of a PAN: 32 hex digits of HMAC-SHA256(key, PAN), stable and irreversible.

    >>> pan_token(bytes(32), "4761739001010010")
    '8c7148ea09b94136dac7cdd0a19505c0'
    """
    return message_mac(key, require_pan(pan).encode("ascii"))[:TOKEN_SIZE].hex()


def pan_tokens(key: bytes, pans: Sequence[str]) -> list[str]:
    """:func:`pan_token` of each PAN, in order (:func:`message_macs`).

    Raises
    ------
    ValueError
        One of ``pans`` is not 8 to 19 digits (the message does not repeat it).

    >>> pan_tokens(bytes(32), ["4761739001010010"])
    ['8c7148ea09b94136dac7cdd0a19505c0']
    """
    messages = [require_pan(pan).encode("ascii") for pan in pans]
    return [mac[:TOKEN_SIZE].hex() for mac in message_macs(key, messages)]


def seal_field(key: bytes, version: int, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt one field value with AES-256-GCM under key ``version`` (layout above).

    Raises
    ------
    ValueError
        ``plaintext`` over 64 KiB, or a key that is not 32 bytes.
    """
    assert 0 < version <= VERSION_MAX
    if len(plaintext) > FIELD_SIZE_MAX:
        raise ValueError(f"field plaintext must be at most {FIELD_SIZE_MAX} bytes")
    nonce = os.urandom(NONCE_SIZE)
    header = bytes([FIELD_FORMAT]) + version.to_bytes(4, "big") + nonce
    aead = AESGCM(require_length("key", key, DATA_KEY_SIZE))
    return header + aead.encrypt(nonce, plaintext, header + associated_data)


def field_version(sealed: bytes) -> int:
    """The key version a sealed field was encrypted under.

    Raises
    ------
    ValueError
        Not a sealed field of this format.
    """
    if len(sealed) < FIELD_HEADER_SIZE + TAG_SIZE or sealed[0] != FIELD_FORMAT:
        raise ValueError("ciphertext is not a sealed field (format 1)")
    return int.from_bytes(sealed[1:5], "big")


def open_field(key: bytes, sealed: bytes, associated_data: bytes) -> bytes | None:
    """The plaintext of a sealed field, or ``None`` when it or its associated data was
    altered (or the key is not the one it was sealed under)."""
    field_version(sealed)
    header, body = sealed[:FIELD_HEADER_SIZE], sealed[FIELD_HEADER_SIZE:]
    try:
        return AESGCM(key).decrypt(header[5:], body, header + associated_data)
    except InvalidTag:
        return None
