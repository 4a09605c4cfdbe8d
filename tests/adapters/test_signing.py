"""Signed requests: good ones pass once; tampering, replays, staleness and revocation fail."""

import pytest

from adapters.errors import SignatureError
from adapters.signing import Verifier, sign

KEY = bytes(range(32))
NOW_MS = 1_790_000_000_000


def _signed(body=b'{"a":1}', **kwargs):
    return sign(KEY, "POST", "/v1/taps", body, key_id="gate-7", timestamp_ms=NOW_MS,
                nonce="abcdefghijklmnop", **kwargs)


def test_known_answer_signature():
    # Computed independently with: openssl dgst -sha256 -mac HMAC over the canonical string.
    assert _signed()["X-Onecard-Signature"] == (
        "ed362f73e7fda1189227aef1b131648d13242207b5a387eb5c82f61432621975"
    )


def test_accepts_once_then_refuses_replay():
    verifier = Verifier({"gate-7": KEY})
    headers = _signed()
    assert verifier.verify("POST", "/v1/taps", headers, b'{"a":1}', now_ms=NOW_MS) == "gate-7"
    with pytest.raises(SignatureError, match="replayed"):
        verifier.verify("POST", "/v1/taps", headers, b'{"a":1}', now_ms=NOW_MS)


@pytest.mark.parametrize(
    "method, path, body, now_ms, reason",
    [
        ("POST", "/v1/taps", b'{"a":2}', NOW_MS, "does not match"),
        ("GET", "/v1/taps", b'{"a":1}', NOW_MS, "does not match"),
        ("POST", "/v1/other", b'{"a":1}', NOW_MS, "does not match"),
        ("POST", "/v1/taps", b'{"a":1}', NOW_MS + 300_001, "clock skew"),
    ],
)
def test_refuses_tampered_or_stale(method, path, body, now_ms, reason):
    verifier = Verifier({"gate-7": KEY})
    with pytest.raises(SignatureError, match=reason):
        verifier.verify(method, path, _signed(), body, now_ms=now_ms)


def test_refuses_unknown_and_revoked_keys():
    verifier = Verifier({"gate-7": KEY})
    verifier.revoke("gate-7")
    with pytest.raises(SignatureError, match="unknown or revoked"):
        verifier.verify("POST", "/v1/taps", _signed(), b'{"a":1}', now_ms=NOW_MS)


def test_missing_header_is_named():
    headers = _signed()
    del headers["X-Onecard-Nonce"]
    with pytest.raises(SignatureError, match="X-Onecard-Nonce: header missing"):
        Verifier({"gate-7": KEY}).verify("POST", "/v1/taps", headers, b"", now_ms=NOW_MS)


@pytest.mark.parametrize(
    "header, value, reason",
    [
        ("X-Onecard-Timestamp", "9" * 5000, "X-Onecard-Timestamp: must be Unix milliseconds"),
        ("X-Onecard-Timestamp", "17900000000000000", "X-Onecard-Timestamp: must be Unix milliseconds"),
        ("X-Onecard-Timestamp", "١٧٩", "X-Onecard-Timestamp: must be Unix milliseconds"),
        ("X-Onecard-Signature", "é" * 64, "X-Onecard-Signature: must be 64 hex digits"),
        ("X-Onecard-Signature", "00" * 33, "X-Onecard-Signature: must be 64 hex digits"),
    ],
)
def test_malformed_headers_are_refused_by_name(header, value, reason):
    headers = _signed() | {header: value}
    with pytest.raises(SignatureError) as refused:
        Verifier({"gate-7": KEY}).verify("POST", "/v1/taps", headers, b'{"a":1}', now_ms=NOW_MS)
    assert str(refused.value).startswith(reason)
