"""Checking what a key claims to be, and describing it without its value."""

from __future__ import annotations

import datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm.ciphers import KEY_SIZE, key_check_value
from hsm.datakeys import DATA_KEY_SIZE, message_mac
from hsm.errors import HsmValueError
from hsm.scheme import Scheme, scheme_named
from hsm.service import DATA_KEY_ALGS, IMK_ALGS, KEY_TYPES, KeyInfo, check_label


def check_key_claims(key_type: str, alg: str, scheme: str | None) -> tuple[str, Scheme | None]:
    """The canonical algorithm name and the scheme of a key about to be stored.

    ``imk-ac`` keys need ``alg`` 3des/aes/sm4 and a scheme (:func:`hsm.scheme.scheme_named`)
    running that algorithm; data keys take no scheme and their algorithm is fixed.

    >>> check_key_claims("imk-ac", "3des", "pboc-3des")[0]
    '3DES'
    >>> check_key_claims("imk-ac", "aes", "pboc-3des")
    Traceback (most recent call last):
    ...
    hsm.errors.HsmValueError: scheme pboc-3des runs 3DES, not AES-128
    """
    if key_type not in KEY_TYPES:
        raise HsmValueError(f"key type must be one of {', '.join(KEY_TYPES)}, got {key_type!r}")
    if key_type != "imk-ac":
        if scheme is not None:
            raise HsmValueError(f"a {key_type} key takes no scheme")
        return DATA_KEY_ALGS[key_type], None
    canonical = IMK_ALGS.get(alg.lower()) if isinstance(alg, str) else None
    if canonical is None:
        raise HsmValueError(f"alg must be one of {', '.join(IMK_ALGS)}, got {alg!r}")
    try:
        found = scheme_named(scheme or "")
    except ValueError as error:
        raise HsmValueError(str(error)) from None
    if found.alg != canonical:
        raise HsmValueError(f"scheme {scheme} runs {found.alg}, not {canonical}")
    return canonical, found


def key_size(key_type: str) -> int:
    """16 bytes for ``imk-ac``, 32 for data keys."""
    return KEY_SIZE if key_type == "imk-ac" else DATA_KEY_SIZE


def kcv_hex(key_type: str, alg: str, key: bytes) -> str:
    """The key check value of ``key`` (3 bytes, upper-case hex), see :class:`KeyInfo`."""
    if key_type == "imk-ac":
        return key_check_value(alg, key).hex().upper()
    if key_type == "field-enc":
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return encryptor.update(bytes(16))[:3].hex().upper()
    return message_mac(key, bytes(DATA_KEY_SIZE))[:3].hex().upper()


def describe_key(
    label: str, key_type: str, alg: str, key: bytes, scheme: str | None, version: int = 1
) -> KeyInfo:
    """The metadata of a checked key (created now, UTC).

    Raises
    ------
    HsmValueError
        A bad label, type, algorithm, scheme or key length (the message never shows the key).
    """
    canonical, _ = check_key_claims(key_type, alg, scheme)
    if not isinstance(key, bytes) or len(key) != key_size(key_type):
        raise HsmValueError(f"a {key_type} key must be {key_size(key_type)} bytes")
    return KeyInfo(
        label=check_label(label),
        key_type=key_type,
        alg=canonical,
        kcv=kcv_hex(key_type, canonical, key),
        created_utc=utc_now(),
        version=version,
        scheme=scheme,
    )


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-11-30T19:20:00Z``)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")
