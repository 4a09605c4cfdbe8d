"""Application cryptograms (ARQC, TC, AAC): the MAC over the transaction data.

EMV 4.4 Book 2, A1.2: MAC algorithm 3 of ISO/IEC 9797-1 for 3DES, CMAC cut to its
leftmost 8 bytes for AES-128 and SM4.
"""

from __future__ import annotations

import hmac
from typing import Literal

from hsm.ciphers import Alg
from hsm.inputs import require_length
from hsm.mac import cmac, mac_algorithm_3

AcMac = Literal["alg3_pad1", "alg3_pad2", "cmac8"]
AC_MACS: tuple[AcMac, ...] = ("alg3_pad1", "alg3_pad2", "cmac8")
CRYPTOGRAM_SIZE = 8
TRANSACTION_DATA_SIZE_MAX = 1024


def cryptogram_mac(alg: Alg, ac_mac: AcMac, key: bytes, data: bytes) -> bytes:
    """The 8-byte application cryptogram of ``data`` under the 16-byte AC ``key``.

    Raises
    ------
    ValueError
        A key that is not 16 bytes, data over 1024 bytes, or a MAC that does not fit the
        algorithm (``alg3_*`` needs 3DES, ``cmac8`` AES-128 or SM4).
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) > TRANSACTION_DATA_SIZE_MAX:
        raise ValueError(f"transaction_data must be bytes of at most {TRANSACTION_DATA_SIZE_MAX}")
    if ac_mac == "cmac8" and alg != "3DES":
        return cmac(alg, key, data)[:CRYPTOGRAM_SIZE]
    if ac_mac in ("alg3_pad1", "alg3_pad2") and alg == "3DES":
        return mac_algorithm_3(key, data, 1 if ac_mac == "alg3_pad1" else 2)
    raise ValueError(f"ac_mac {ac_mac!r} does not fit alg {alg}")


def cryptograms_equal(expected: bytes, presented: bytes) -> bool:
    """Compare two 8-byte cryptograms in constant time.

    >>> cryptograms_equal(bytes(8), bytes(8))
    True

    Raises
    ------
    ValueError
        ``presented`` is not 8 bytes.
    """
    require_length("arqc", presented, CRYPTOGRAM_SIZE)
    return hmac.compare_digest(expected, presented)
