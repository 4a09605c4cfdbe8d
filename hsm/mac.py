"""MACs of the application cryptograms: ISO/IEC 9797-1 MAC algorithm 3 and CMAC."""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.modes import CBC, ECB
from cryptography.hazmat.primitives.cmac import CMAC

from hsm.ciphers import BLOCK_SIZE, KEY_SIZE, Alg, block_cipher, des3_key
from hsm.inputs import require_length

Padding = Literal[1, 2]
DES_BLOCK = BLOCK_SIZE["3DES"]


def pad(data: bytes, block_size: int, method: Padding) -> bytes:
    """Pad ``data`` to whole blocks by ISO/IEC 9797-1 padding method 1 or 2.

    Method 1 appends zero bytes (and one zero block to empty data); method 2 always
    appends ``80`` then zero bytes, a whole extra block when ``data`` already fills its
    last block.

    >>> pad(bytes.fromhex("0102"), 8, 1).hex()
    '0102000000000000'
    >>> pad(bytes(8), 8, 2).hex()
    '00000000000000008000000000000000'
    """
    if method == 2:
        data = data + b"\x80"
    elif method != 1:
        raise ValueError(f"padding method must be 1 or 2, got {method!r}")
    fill = -len(data) % block_size if data else block_size
    return data + bytes(fill)


def mac_algorithm_3(key: bytes, data: bytes, padding: Padding) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (the "retail MAC") with a double-length DES key.

    DES-CBC under KL over every block but the last, then 3DES (KL, KR) of the last block
    chained with that value: the same computation the PKCS#11 backend does inside the
    token. EMV 4.4 Book 2, A1.2.1.

    Parameters
    ----------
    key : bytes
        16 bytes, KL || KR.
    data : bytes
        Any length, padded here by ``padding`` (1 or 2).

    Returns
    -------
    bytes
        8 bytes.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> mac_algorithm_3(key, bytes.fromhex("0123456789ABCDEF"), 1).hex().upper()
    '1A4D672DCA6CB335'
    """
    require_length("key", key, KEY_SIZE)
    blocks = pad(data, DES_BLOCK, padding)
    # The ARQC hot path: inputs are checked above, so the contexts are built directly,
    # with mode objects made once (a zero-IV CBC for the chain, ECB for the last block).
    last = blocks[-DES_BLOCK:]
    if len(blocks) > DES_BLOCK:
        single = Cipher(TripleDES(key[:8] * 3), _CBC_ZERO_IV).encryptor()
        chain = single.update(blocks[:-DES_BLOCK])[-DES_BLOCK:]
        last = (int.from_bytes(last, "big") ^ int.from_bytes(chain, "big")).to_bytes(8, "big")
    return Cipher(TripleDES(des3_key(key)), _ECB).encryptor().update(last)


_CBC_ZERO_IV = CBC(bytes(DES_BLOCK))
_ECB = ECB()


def cmac(alg: Alg, key: bytes, data: bytes) -> bytes:
    """CMAC (NIST SP 800-38B, ISO/IEC 9797-1 MAC algorithm 5) of ``data``: one block.

    >>> key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    >>> cmac("AES-128", key, b"").hex()
    'bb1d6929e95937287fa37d129b756746'
    """
    signer = CMAC(block_cipher(alg, key))
    signer.update(data)
    return signer.finalize()
