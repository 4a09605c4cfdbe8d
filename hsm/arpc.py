"""Authorisation response cryptograms (ARPC), EMV 4.4 Book 2, A1.2 and 8.2.

Method 1: ``ARPC = E(ARQC xor (ARC || 00..00))`` (8 bytes; for 16-byte block ciphers the
input is zero-filled to one block and the result cut to 8 bytes). Method 2: the 4 leftmost
bytes of the scheme's MAC over ``ARQC || CSU || proprietary authentication data``, with
padding method 2 for 3DES.
"""

from __future__ import annotations

from hsm.ciphers import BLOCK_SIZE, Alg, ecb_encrypt
from hsm.inputs import require_length
from hsm.mac import cmac, mac_algorithm_3

ARC_SIZE = 2
CSU_SIZE = 4
PROPRIETARY_AUTH_DATA_SIZE_MAX = 8
ARPC_1_SIZE = 8
ARPC_2_SIZE = 4


def arpc_method_1(alg: Alg, key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1 (8 bytes) from the 8-byte ARQC and the 2-byte response code.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> arpc_method_1("3DES", key, bytes(8), bytes(2)).hex().upper()
    '08D7B4FB629D0885'
    """
    require_length("arqc", arqc, 8)
    require_length("arc", arc, ARC_SIZE)
    block = (int.from_bytes(arqc, "big") ^ int.from_bytes(arc + bytes(6), "big")).to_bytes(8, "big")
    return ecb_encrypt(alg, key, block.ljust(BLOCK_SIZE[alg], b"\x00"))[:ARPC_1_SIZE]


def arpc_method_2(
    alg: Alg, key: bytes, arqc: bytes, csu: bytes, proprietary_auth_data: bytes = b""
) -> bytes:
    """ARPC method 2 (4 bytes) from the ARQC, the 4-byte card status update and 0 to 8
    bytes of proprietary authentication data."""
    require_length("arqc", arqc, 8)
    require_length("csu", csu, CSU_SIZE)
    require_length(
        "proprietary_auth_data", proprietary_auth_data, *range(PROPRIETARY_AUTH_DATA_SIZE_MAX + 1)
    )
    data = arqc + csu + proprietary_auth_data
    mac = mac_algorithm_3(key, data, 2) if alg == "3DES" else cmac(alg, key, data)
    return mac[:ARPC_2_SIZE]
