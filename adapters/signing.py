"""Signed HTTP requests between devices or banks and the engine.

A client holding a per-device (or per-bank) secret key signs each request; the server
checks the key id, the signature, the timestamp's freshness and that the nonce was not seen
before. Used by gates (tap API) and partner banks (settlement API).

Headers
-------
``X-Onecard-Key``        key id (gate id or bank code)
``X-Onecard-Timestamp``  Unix time in milliseconds (decimal)
``X-Onecard-Nonce``      16 to 64 characters of ``[A-Za-z0-9_-]``, unique per key
``X-Onecard-Signature``  hex HMAC-SHA256 of the canonical string

Canonical string (RFC 2104 HMAC over UTF-8)::

    METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict

from adapters.errors import SignatureError

HEADER_KEY = "X-Onecard-Key"
HEADER_TIMESTAMP = "X-Onecard-Timestamp"
HEADER_NONCE = "X-Onecard-Nonce"
HEADER_SIGNATURE = "X-Onecard-Signature"

CLOCK_SKEW_MS_MAX = 300_000
NONCES_REMEMBERED_MAX = 1_000_000
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Unix milliseconds have 13 digits until the year 2286; the bound keeps int() cheap and
# far below Python's 4,300-digit conversion limit.
TIMESTAMP_DIGITS_MAX = 16
TIMESTAMP_PATTERN = re.compile(r"^[0-9]{1,%d}$" % TIMESTAMP_DIGITS_MAX)
SIGNATURE_PATTERN = re.compile(r"^[0-9A-Fa-f]{64}$")

assert CLOCK_SKEW_MS_MAX > 0 and NONCES_REMEMBERED_MAX > 0


def canonical_string(method: str, path: str, timestamp_ms: int, nonce: str, body: bytes) -> bytes:
    """The bytes that are signed (see the module docstring).

    >>> canonical_string("POST", "/v1/taps", 1, "n" * 16, b"")[:20]
    b'POST\\n/v1/taps\\n1\\nnnnn'
    """
    body_hash = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp_ms}\n{nonce}\n{body_hash}".encode()


def sign(key: bytes, method: str, path: str, body: bytes, *, key_id: str,
         timestamp_ms: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """Headers that sign one request with ``key`` (any length; 32 bytes recommended).

    ``timestamp_ms`` defaults to now, ``nonce`` to 24 random URL-safe characters.
    """
    assert key, "signing key must not be empty"
    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = nonce or secrets.token_urlsafe(18)
    mac = hmac.new(key, canonical_string(method, path, timestamp_ms, nonce, body), hashlib.sha256)
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: str(timestamp_ms),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: mac.hexdigest(),
    }


class Verifier:
    """Checks signed requests against a key table and remembers nonces to refuse replays.

    ``keys`` maps key id to secret; a revoked key is simply removed (``revoke``). Nonces
    are remembered per key id, the oldest forgotten past ``NONCES_REMEMBERED_MAX``; a nonce
    older than the allowed clock skew is refused by its timestamp anyway.
    """

    def __init__(self, keys: dict[str, bytes], *, clock_skew_ms_max: int = CLOCK_SKEW_MS_MAX):
        self._keys = dict(keys)
        self._clock_skew_ms_max = clock_skew_ms_max
        self._nonces: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __repr__(self) -> str:
        return f"Verifier(keys={len(self._keys)})"

    def add_key(self, key_id: str, key: bytes) -> None:
        """Register (or replace) the secret of ``key_id``."""
        assert key, "signing key must not be empty"
        self._keys[key_id] = key

    def revoke(self, key_id: str) -> None:
        """Refuse every later request signed by ``key_id``."""
        self._keys.pop(key_id, None)

    def verify(self, method: str, path: str, headers, body: bytes,
               *, now_ms: int | None = None) -> str:
        """Return the key id of a correctly signed, fresh, first-seen request.

        Raises
        ------
        SignatureError
            A header is missing or malformed, the key id is unknown or revoked, the
            timestamp is outside the allowed skew, the nonce was seen before, or the
            signature does not match.
        """
        key_id = _header(headers, HEADER_KEY)
        timestamp_text = _header(headers, HEADER_TIMESTAMP)
        nonce = _header(headers, HEADER_NONCE)
        signature = _header(headers, HEADER_SIGNATURE)
        # ASCII digits only: str.isdigit() also takes other scripts' digits and superscripts.
        if not TIMESTAMP_PATTERN.match(timestamp_text):
            raise SignatureError(f"{HEADER_TIMESTAMP}: must be Unix milliseconds "
                                 f"(1 to {TIMESTAMP_DIGITS_MAX} decimal digits)")
        if not SIGNATURE_PATTERN.match(signature):
            raise SignatureError(f"{HEADER_SIGNATURE}: must be 64 hex digits")
        if not NONCE_PATTERN.match(nonce):
            raise SignatureError(f"{HEADER_NONCE}: must be 16-64 characters of [A-Za-z0-9_-]")
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureError(f"{HEADER_KEY}: unknown or revoked key id {key_id!r}")
        timestamp_ms = int(timestamp_text)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if abs(now_ms - timestamp_ms) > self._clock_skew_ms_max:
            raise SignatureError(f"{HEADER_TIMESTAMP}: outside the allowed clock skew")
        expected = hmac.new(key, canonical_string(method, path, timestamp_ms, nonce, body),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise SignatureError(f"{HEADER_SIGNATURE}: does not match the request")
        if (key_id, nonce) in self._nonces:
            raise SignatureError(f"{HEADER_NONCE}: replayed request")
        self._remember(key_id, nonce, timestamp_ms)
        return key_id

    def _remember(self, key_id: str, nonce: str, timestamp_ms: int) -> None:
        self._nonces[(key_id, nonce)] = timestamp_ms
        while len(self._nonces) > NONCES_REMEMBERED_MAX:
            self._nonces.popitem(last=False)


def _header(headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureError(f"{name}: header missing")
    return value.strip()
