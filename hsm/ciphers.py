"""Block ciphers the schemes use: double-length 3DES, AES-128 and SM4 (GM/T 0002).

Every key of every scheme is 16 bytes. 3DES keys are double-length (KL || KR), run as the
24-byte KL || KR || KL because the ``cryptography`` package deprecates 16-byte keys.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm.inputs import require_length

Alg = Literal["3DES", "AES-128", "SM4"]
ALGS: tuple[Alg, ...] = ("3DES", "AES-128", "SM4")

KEY_SIZE = 16
BLOCK_SIZE = {"3DES": 8, "AES-128": 16, "SM4": 16}
KCV_SIZE = 3
assert set(BLOCK_SIZE) == set(ALGS)
assert KCV_SIZE <= min(BLOCK_SIZE.values())

_ECB = modes.ECB()


def des3_key(key: bytes) -> bytes:
    """The 24-byte three-key form KL || KR || KL of a 16-byte double-length key."""
    return key + key[:8]


def _algorithm(alg: Alg, key: bytes):
    if alg == "3DES":
        return TripleDES(des3_key(key))
    if alg == "AES-128":
        return algorithms.AES(key)
    if alg == "SM4":
        return algorithms.SM4(key)
    raise ValueError(f"alg must be one of {', '.join(ALGS)}, got {alg!r}")


def block_cipher(alg: Alg, key: bytes):
    """The ``cryptography`` block cipher object for ``alg`` under a 16-byte ``key``.

    Raises
    ------
    ValueError
        ``alg`` is unknown or ``key`` is not 16 bytes.
    """
    return _algorithm(alg, require_length("key", key, KEY_SIZE))


def ecb_encrypt(alg: Alg, key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks of ``data`` in ECB mode.

    Parameters
    ----------
    alg : "3DES" | "AES-128" | "SM4"
    key : bytes
        16 bytes (3DES: double-length KL || KR).
    data : bytes
        A multiple of the block size (8 bytes for 3DES, 16 for AES and SM4).

    >>> ecb_encrypt("3DES", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), bytes(8)).hex()
    '08d7b4fb629d0885'

    Raises
    ------
    ValueError
        Unknown ``alg``, a key that is not 16 bytes, or data that is not whole blocks.
    """
    require_blocks(alg, "data", data)
    return Cipher(block_cipher(alg, key), _ECB).encryptor().update(data)


def require_blocks(alg: Alg, field: str, data: bytes) -> bytes:
    """Return ``data`` if it is a non-empty multiple of ``alg``'s block size."""
    size = BLOCK_SIZE.get(alg)
    if size is None:
        raise ValueError(f"alg must be one of {', '.join(ALGS)}, got {alg!r}")
    if not isinstance(data, (bytes, bytearray)) or not data or len(data) % size:
        raise ValueError(f"{field} must be a non-empty multiple of {size} bytes for {alg}")
    return data


def adjust_parity(key: bytes) -> bytes:
    """Set each byte of a DES key to odd parity (its low bit is the parity bit).

    >>> adjust_parity(bytes.fromhex("0000FFFE")).hex()
    '0101fefe'
    """
    return bytes(key).translate(_ODD_PARITY)


# Each byte with its low bit set so that the byte has an odd number of one bits.
_ODD_PARITY = bytes((byte & 0xFE) | (bin(byte & 0xFE).count("1") + 1) % 2 for byte in range(256))


def key_check_value(alg: Alg, key: bytes) -> bytes:
    """The key check value: the first 3 bytes of the key's encryption of a zero block.

    This is the classic KCV of ANSI X9.24 for 3DES, used here for AES and SM4 as well so
    that ceremony officers compare one kind of figure; it reveals nothing usable about
    the key.

    >>> key_check_value("3DES", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")).hex().upper()
    '08D7B4'
    """
    return ecb_encrypt(alg, key, bytes(BLOCK_SIZE[alg]))[:KCV_SIZE]
