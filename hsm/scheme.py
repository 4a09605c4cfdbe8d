"""A cryptogram scheme, and the whole computation of a scheme in four calls.

A :class:`Scheme` names the cipher, the ICC master key option, the session key method and
the AC MAC. The functions here are pure (no I/O, no key store): the key service and the
card emulator both call them.

>>> scheme = SCHEMES["emv-csk-3des"]
>>> imk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
>>> mk = icc_master_key(scheme, imk, "4761739001010010", "01")
>>> sk = session_key(scheme, mk, atc=bytes.fromhex("0001"))
>>> arqc = application_cryptogram(scheme, sk, bytes(29))
>>> verify_application_cryptogram(scheme, sk, bytes(29), arqc)
True
>>> len(generate_arpc(scheme, sk, arqc, 1, arc=b"00"))
8
"""

from __future__ import annotations

from typing import Literal

import msgspec

from hsm import arpc, derivation
from hsm.ciphers import Alg
from hsm.cryptogram import AcMac, cryptogram_mac, cryptograms_equal
from hsm.inputs import require_length

MasterKeyDerivation = Literal["A", "B"]
SessionKeyDerivation = Literal["none", "emv_csk", "mastercard", "common_r", "pboc"]


class Scheme(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a card computes its application cryptogram.

    Attributes
    ----------
    alg : "3DES" | "AES-128" | "SM4"
    master_key_derivation : "A" | "B"
        EMV 4.4 Book 2, A1.4.1 Option A or A1.4.2 Option B.
    session_key_derivation : "none" | "emv_csk" | "mastercard" | "common_r" | "pboc"
        ``none``: the ICC master key is the AC key (Visa CVN 10); ``emv_csk``: A1.3.1 with
        R = ATC || 00..00; ``mastercard``: R = ATC || 0000 || UN; ``common_r``: A1.3.1
        with an explicit R; ``pboc``: PBOC 3.0 (3DES only).
    ac_mac : "alg3_pad1" | "alg3_pad2" | "cmac8"
        MAC algorithm 3 with padding method 1 or 2 (3DES), or CMAC's leftmost 8 bytes
        (AES-128, SM4).

    Raises
    ------
    ValueError
        A combination that no card runs (``cmac8`` with 3DES, ``alg3_*`` or ``pboc`` with
        AES-128 or SM4).
    """

    alg: Alg
    master_key_derivation: MasterKeyDerivation
    session_key_derivation: SessionKeyDerivation
    ac_mac: AcMac

    def __post_init__(self) -> None:
        if (self.ac_mac == "cmac8") != (self.alg != "3DES"):
            raise ValueError(f"ac_mac {self.ac_mac} does not fit alg {self.alg}")
        if self.session_key_derivation == "pboc" and self.alg != "3DES":
            raise ValueError(f"the pboc session key is defined for 3DES only, not {self.alg}")


SCHEMES: dict[str, Scheme] = {
    "visa-cvn10": Scheme("3DES", "A", "none", "alg3_pad1"),
    "emv-csk-3des": Scheme("3DES", "A", "emv_csk", "alg3_pad2"),
    "emv-csk-3des-b": Scheme("3DES", "B", "emv_csk", "alg3_pad2"),
    "mastercard-skd": Scheme("3DES", "A", "mastercard", "alg3_pad2"),
    "pboc-3des": Scheme("3DES", "A", "pboc", "alg3_pad2"),
    "pboc-sm4": Scheme("SM4", "A", "emv_csk", "cmac8"),
    "emv-aes": Scheme("AES-128", "A", "emv_csk", "cmac8"),
}


def scheme_named(name: str) -> Scheme:
    """The scheme called ``name``: a key of :data:`SCHEMES`, or the spelled-out form
    ``ALG:MASTER_KEY_DERIVATION:SESSION_KEY_DERIVATION:AC_MAC`` for any valid combination.

    >>> scheme_named("visa-cvn10") == scheme_named("3DES:A:none:alg3_pad1")
    True
    >>> scheme_name(scheme_named("3DES:A:common_r:alg3_pad1"))
    '3DES:A:common_r:alg3_pad1'

    Raises
    ------
    ValueError
        No such scheme (the message lists the named ones) or an invalid combination.
    """
    scheme = SCHEMES.get(name) if isinstance(name, str) else None
    if scheme is not None:
        return scheme
    parts = name.split(":") if isinstance(name, str) else []
    if len(parts) != len(Scheme.__struct_fields__):
        raise ValueError(
            f"scheme must be one of {', '.join(sorted(SCHEMES))} or "
            f"ALG:MASTER_KEY_DERIVATION:SESSION_KEY_DERIVATION:AC_MAC, got {name!r}"
        )
    try:
        return msgspec.convert(dict(zip(Scheme.__struct_fields__, parts)), Scheme)
    except msgspec.ValidationError as error:
        raise ValueError(f"scheme {name!r}: {error}") from None


def scheme_name(scheme: Scheme) -> str:
    """The name of ``scheme`` in :data:`SCHEMES`, else its spelled-out form."""
    for name, named in SCHEMES.items():
        if named == scheme:
            return name
    return ":".join(getattr(scheme, field) for field in Scheme.__struct_fields__)


def master_key_input(scheme: Scheme, pan: str, psn: str) -> bytes:
    """The 16 bytes the issuer master key encrypts (ECB) to give the card's ICC master key.

    Raises
    ------
    ValueError
        A PAN or PSN that is not digits of the right length.
    """
    if scheme.master_key_derivation == "A":
        y = derivation.option_a_input(pan, psn)
    else:
        y = derivation.option_b_input(pan, psn)
    return derivation.master_key_input(y)


def icc_master_key(scheme: Scheme, issuer_master_key: bytes, pan: str, psn: str) -> bytes:
    """The 16-byte ICC master key of the card ``pan`` / ``psn`` (EMV Book 2 A1.4).

    Parameters
    ----------
    issuer_master_key : bytes
        16 bytes (the issuer's IMK-AC).
    pan : str
        8 to 19 decimal digits.
    psn : str
        2 decimal digits (``"00"`` when the card has no PAN sequence number).

    Raises
    ------
    ValueError
        A wrong key length, or a PAN or PSN that is not digits of the right length.
    """
    data = master_key_input(scheme, pan, psn)
    return derivation.encrypt_derive(scheme.alg, issuer_master_key, data)


def session_key_input(
    scheme: Scheme, atc: bytes, un: bytes = b"", r: bytes | None = None
) -> bytes | None:
    """The 16 bytes the ICC master key encrypts (ECB) to give the AC session key, or
    ``None`` when the scheme has no session key (the ICC master key is the AC key).

    Arguments and errors as :func:`session_key`.
    """
    method = scheme.session_key_derivation
    if (r is not None) != (method == "common_r"):
        raise ValueError(f"r is {'required' if method == 'common_r' else 'not used'} for {method}")
    if method == "none":
        return None
    if method == "pboc":
        return derivation.pboc_session_input(scheme.alg, atc)
    if method == "mastercard":
        r = derivation.mastercard_r(scheme.alg, atc, un)
    elif method == "emv_csk":
        r = derivation.emv_csk_r(scheme.alg, atc)
    return derivation.common_session_input(scheme.alg, r)


def session_key(
    scheme: Scheme, icc_master_key: bytes, atc: bytes, un: bytes = b"", r: bytes | None = None
) -> bytes:
    """The 16-byte AC key of one transaction (EMV Book 2 A1.3, or PBOC 3.0).

    Parameters
    ----------
    icc_master_key : bytes
        16 bytes.
    atc : bytes
        2 bytes, the application transaction counter (tag 9F36); not used by ``none``
        and ``common_r``.
    un : bytes
        4 bytes, the unpredictable number (tag 9F37); used by ``mastercard`` only.
    r : bytes | None
        The explicit diversification value (one block) of ``common_r``; must be ``None``
        for every other method.

    Raises
    ------
    ValueError
        A wrong length of any input, or ``r`` given (or missing) against the scheme.
    """
    require_length("icc_master_key", icc_master_key, 16)
    data = session_key_input(scheme, atc, un, r)
    if data is None:
        return icc_master_key
    return derivation.encrypt_derive(scheme.alg, icc_master_key, data)


def application_cryptogram(scheme: Scheme, ac_key: bytes, transaction_data: bytes) -> bytes:
    """The 8-byte application cryptogram (ARQC, TC, AAC) of ``transaction_data``.

    ``transaction_data`` is the exact byte string the card MACs (CDOL1 data, with the IAD
    where the scheme includes it), at most 1024 bytes. EMV 4.4 Book 2, A1.2.

    Raises
    ------
    ValueError
        ``ac_key`` is not 16 bytes or ``transaction_data`` is over 1024 bytes.
    """
    return cryptogram_mac(scheme.alg, scheme.ac_mac, ac_key, transaction_data)


def verify_application_cryptogram(
    scheme: Scheme, ac_key: bytes, transaction_data: bytes, arqc: bytes
) -> bool:
    """Whether the 8-byte ``arqc`` is the cryptogram of ``transaction_data`` (constant time).

    Raises
    ------
    ValueError
        As :func:`application_cryptogram`, or ``arqc`` is not 8 bytes.
    """
    return cryptograms_equal(application_cryptogram(scheme, ac_key, transaction_data), arqc)


def generate_arpc(
    scheme: Scheme,
    key: bytes,
    arqc: bytes,
    method: Literal[1, 2],
    *,
    arc: bytes | None = None,
    csu: bytes | None = None,
    proprietary_auth_data: bytes = b"",
) -> bytes:
    """The ARPC for an ARQC: 8 bytes by method 1 (needs ``arc``), 4 by method 2 (``csu``).

    ``key`` is the 16-byte key the issuer uses for ARPCs (the session key or the ICC
    master key, by the card's profile). EMV 4.4 Book 2, A1.2; the caller must only ask
    for an ARPC after the ARQC verified.

    Raises
    ------
    ValueError
        An unknown ``method``, its input missing or of the wrong length (``arc`` 2 bytes,
        ``csu`` 4 bytes, ``proprietary_auth_data`` 0 to 8 bytes).
    """
    if method == 1:
        if arc is None:
            raise ValueError("arc is required for ARPC method 1")
        return arpc.arpc_method_1(scheme.alg, key, arqc, arc)
    if method == 2:
        if csu is None:
            raise ValueError("csu is required for ARPC method 2")
        return arpc.arpc_method_2(scheme.alg, key, arqc, csu, proprietary_auth_data)
    raise ValueError(f"ARPC method must be 1 or 2, got {method!r}")
