"""Card key derivation: ICC master keys (EMV Book 2 A1.4) and AC session keys (A1.3).

All keys are 16 bytes. 3DES results get odd parity, as a card personalisation system
stores them; AES and SM4 keys have no parity.
"""

from __future__ import annotations

import hashlib

from hsm.ciphers import BLOCK_SIZE, KEY_SIZE, Alg, adjust_parity, ecb_encrypt
from hsm.inputs import require_length, require_pan, require_psn

ATC_SIZE = 2
UN_SIZE = 4
Y_DIGITS = 16
_INVERT = bytes([0xFF]) * 8


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def option_a_input(pan: str, psn: str) -> bytes:
    """Y of Option A: the rightmost 16 digits of PAN || PSN, zero-filled on the left, as BCD.

    EMV 4.4 Book 2, A1.4.1.

    >>> option_a_input("4761739001010010", "01").hex()
    '6173900101001001'
    >>> option_a_input("45586082144", "02").hex()
    '0004558608214402'

    Raises
    ------
    ValueError
        ``pan`` is not 8 to 19 digits or ``psn`` not 2 digits.
    """
    digits = (require_pan(pan) + require_psn(psn))[-Y_DIGITS:].zfill(Y_DIGITS)
    return bytes.fromhex(digits)


def option_b_input(pan: str, psn: str) -> bytes:
    """Y of Option B: for PANs over 16 digits, 16 decimalised digits of SHA-1(PAN || PSN).

    EMV 4.4 Book 2, A1.4.2: the digits of the hash in order, then its letters ``a``-``f``
    as ``0``-``5`` if fewer than 16 digits were found. PANs of 16 digits or fewer use
    Option A's Y, so both options agree for them.

    >>> option_b_input("4761739001010010", "01") == option_a_input("4761739001010010", "01")
    True
    >>> option_b_input("12345678901234567", "45").hex()
    '8760370157480518'
    """
    if len(require_pan(pan)) <= Y_DIGITS:
        return option_a_input(pan, psn)
    digits = pan + require_psn(psn)
    digest = hashlib.sha1(bytes.fromhex(digits.zfill(len(digits) + len(digits) % 2))).hexdigest()
    decimal = [character for character in digest if character.isdigit()]
    letters = [str("abcdef".index(character)) for character in digest if not character.isdigit()]
    return bytes.fromhex("".join((decimal + letters)[:Y_DIGITS]))


def master_key_input(y: bytes) -> bytes:
    """The 16 bytes ``Y || (Y xor FF..FF)`` an issuer master key encrypts (ECB) to give the
    ICC master key: two 3DES blocks, or one AES/SM4 block. EMV 4.4 Book 2, A1.4.1.

    >>> master_key_input(bytes.fromhex("6173900101001001")).hex()
    '61739001010010019e8c6ffefeffeffe'
    """
    return require_length("y", y, 8) + _xor(y, _INVERT)


def common_session_input(alg: Alg, r: bytes) -> bytes:
    """The 16 bytes an ICC master key encrypts (ECB) to give the EMV common session key.

    3DES: ``R with byte 3 = F0 || R with byte 3 = 0F``; AES-128 and SM4: ``R``.
    EMV 4.4 Book 2, A1.3.1.

    Parameters
    ----------
    r : bytes
        One block: 8 bytes for 3DES, 16 for AES-128 and SM4.
    """
    require_length("r", r, BLOCK_SIZE[alg])
    if alg != "3DES":
        return r
    return r[:2] + b"\xf0" + r[3:] + r[:2] + b"\x0f" + r[3:]


def emv_csk_r(alg: Alg, atc: bytes) -> bytes:
    """R = ATC || 00..00 (one block), the AC session key input of EMV Book 2 A1.3.1."""
    return require_length("atc", atc, ATC_SIZE) + bytes(BLOCK_SIZE[alg] - ATC_SIZE)


def mastercard_r(alg: Alg, atc: bytes, un: bytes) -> bytes:
    """R = ATC || 00 00 || UN, zero-filled to one block (Mastercard session key derivation).

    >>> mastercard_r("3DES", bytes.fromhex("0001"), bytes.fromhex("12345678")).hex()
    '0001000012345678'
    """
    require_length("atc", atc, ATC_SIZE)
    require_length("un", un, UN_SIZE)
    return (atc + bytes(2) + un).ljust(BLOCK_SIZE[alg], b"\x00")


def pboc_session_input(alg: Alg, atc: bytes) -> bytes:
    """The 16 bytes ``00*6 || ATC || 00*6 || ~ATC`` of the PBOC 3.0 session key.

    Defined for 3DES only (JR/T 0025); the SM4 programmes in this engine use the EMV
    common session key instead.

    Raises
    ------
    ValueError
        ``alg`` is not 3DES, or ``atc`` is not 2 bytes.
    """
    if alg != "3DES":
        raise ValueError(f"the pboc session key is defined for 3DES only, not {alg}")
    require_length("atc", atc, ATC_SIZE)
    return bytes(6) + atc + bytes(6) + _xor(atc, _INVERT[:ATC_SIZE])


def derived_key(alg: Alg, encrypted: bytes) -> bytes:
    """The key from an ECB encryption of a derivation input: 3DES keys get odd parity."""
    assert len(encrypted) == KEY_SIZE
    return adjust_parity(encrypted) if alg == "3DES" else encrypted


def encrypt_derive(alg: Alg, key: bytes, data: bytes) -> bytes:
    """``derived_key(alg, E_key(data))``: one derivation step done in software."""
    return derived_key(alg, ecb_encrypt(alg, key, data))


assert KEY_SIZE == 16
