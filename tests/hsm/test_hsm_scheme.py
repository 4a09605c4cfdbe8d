"""The pure cryptography: pyemv as an independent oracle, and precise input errors."""

from __future__ import annotations

import warnings

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm import derivation
from hsm.scheme import (
    SCHEMES,
    Scheme,
    application_cryptogram,
    generate_arpc,
    icc_master_key,
    scheme_named,
    session_key,
    verify_application_cryptogram,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pyemv import ac, kd

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
pans = st.text(alphabet="0123456789", min_size=8, max_size=19)
psns = st.text(alphabet="0123456789", min_size=2, max_size=2)
keys = st.binary(min_size=16, max_size=16)


@pytest.fixture(autouse=True)
def _quiet_pyemv():
    # pyemv uses 8- and 16-byte TripleDES keys, which cryptography warns about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@settings(max_examples=60, deadline=None)
@given(imk=keys, pan=pans, psn=psns, option=st.sampled_from("AB"))
def test_icc_master_key_matches_pyemv(imk, pan, psn, option) -> None:
    scheme = Scheme("3DES", option, "none", "alg3_pad1")
    oracle = kd.derive_icc_mk_a if option == "A" else kd.derive_icc_mk_b
    assert icc_master_key(scheme, imk, pan, psn) == oracle(imk, pan, psn)


@settings(max_examples=60, deadline=None)
@given(
    mk=keys,
    atc=st.binary(min_size=2, max_size=2),
    un=st.binary(min_size=4, max_size=4),
    r=st.binary(min_size=8, max_size=8),
)
def test_session_keys_match_pyemv(mk, atc, un, r) -> None:
    def ours(method, **inputs):
        return session_key(Scheme("3DES", "A", method, "alg3_pad2"), mk, atc, **inputs)

    assert ours("emv_csk") == kd.derive_common_sk(mk, atc + bytes(6))
    assert ours("mastercard", un=un) == kd.derive_common_sk(mk, atc + bytes(2) + un)
    assert ours("common_r", r=r) == kd.derive_common_sk(mk, r)
    assert ours("none") == mk


@settings(max_examples=80, deadline=None)
@given(
    key=keys,
    data=st.binary(max_size=80),
    ac_mac=st.sampled_from(["alg3_pad1", "alg3_pad2"]),
    arc=st.binary(min_size=2, max_size=2),
    csu=st.binary(min_size=4, max_size=4),
    pad=st.binary(max_size=8),
)
def test_cryptogram_and_arpc_match_pyemv(key, data, ac_mac, arc, csu, pad) -> None:
    scheme = Scheme("3DES", "A", "emv_csk", ac_mac)
    padding = ac.PaddingType.VISA if ac_mac == "alg3_pad1" else ac.PaddingType.EMV
    if ac_mac == "alg3_pad1" and not data:
        data = b"\x00"  # pyemv does not pad empty data; cards never MAC nothing.
    arqc = application_cryptogram(scheme, key, data)
    assert arqc == ac.generate_ac(key, data, padding)
    assert verify_application_cryptogram(scheme, key, data, arqc)
    assert generate_arpc(scheme, key, arqc, 1, arc=arc) == ac.generate_arpc_1(key, arqc, arc)
    assert generate_arpc(scheme, key, arqc, 2, csu=csu, proprietary_auth_data=pad) == (
        ac.generate_arpc_2(key, arqc, csu, pad)
    )


def test_padding_method_2_adds_a_whole_block_to_aligned_data() -> None:
    # Field pitfall: method 2 always appends 80 00.., even to a multiple of 8 bytes.
    key = IMK
    pad1 = application_cryptogram(SCHEMES["visa-cvn10"], key, bytes(16))
    pad2 = application_cryptogram(SCHEMES["emv-csk-3des"], key, bytes(16))
    explicit = application_cryptogram(SCHEMES["visa-cvn10"], key, bytes(16) + b"\x80" + bytes(7))
    assert pad2 == explicit != pad1


def test_option_b_equals_option_a_up_to_16_digits() -> None:
    for pan in ("45586082144", "4761739001010010"):
        assert derivation.option_b_input(pan, "01") == derivation.option_a_input(pan, "01")
    assert derivation.option_b_input("4761739001010010123", "01") != (
        derivation.option_a_input("4761739001010010123", "01")
    )


def test_a_one_bit_change_fails_verification() -> None:
    scheme = SCHEMES["emv-aes"]
    arqc = application_cryptogram(scheme, IMK, b"data")
    assert verify_application_cryptogram(scheme, IMK, b"data", arqc)
    flipped = bytes([arqc[0] ^ 0x80]) + arqc[1:]
    assert not verify_application_cryptogram(scheme, IMK, b"data", flipped)


BAD_INPUTS = [
    (
        lambda s: icc_master_key(s, IMK[:15], "4761739001010010", "01"),
        "key must be 16 bytes, got 15",
    ),
    (lambda s: icc_master_key(s, IMK, "4761-7390", "01"), "pan must be 8 to 19 decimal digits"),
    (lambda s: icc_master_key(s, IMK, "47617390010100101234", "01"), "pan must be 8 to 19"),
    (lambda s: icc_master_key(s, IMK, "4761739001010010", "1"), "psn must be 2 decimal digits"),
    (lambda s: icc_master_key(s, IMK, "4761739001010010", "٠١"), "psn must be 2 decimal digits"),
    (lambda s: session_key(s, IMK, b"\x00"), "atc must be 2 bytes, got 1"),
    (lambda s: session_key(s, IMK[:8], b"\x00\x01"), "icc_master_key must be 16 bytes, got 8"),
    (lambda s: session_key(s, IMK, b"\x00\x01", r=bytes(8)), "r is not used for emv_csk"),
    (lambda s: application_cryptogram(s, IMK, bytes(1025)), "at most 1024"),
    (lambda s: verify_application_cryptogram(s, IMK, b"", bytes(7)), "arqc must be 8 bytes, got 7"),
    (lambda s: generate_arpc(s, IMK, bytes(8), 1), "arc is required"),
    (lambda s: generate_arpc(s, IMK, bytes(8), 1, arc=bytes(3)), "arc must be 2 bytes, got 3"),
    (
        lambda s: generate_arpc(s, IMK, bytes(8), 2, csu=bytes(4), proprietary_auth_data=bytes(9)),
        "proprietary_auth_data must be",
    ),
    (lambda s: generate_arpc(s, IMK, bytes(8), 3), "ARPC method must be 1 or 2"),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS)
def test_bad_inputs_raise_precise_value_errors(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(SCHEMES["emv-csk-3des"])


def test_error_messages_never_echo_key_material() -> None:
    with pytest.raises(ValueError) as caught:
        icc_master_key(SCHEMES["emv-csk-3des"], IMK + b"\x01", "4761739001010010", "01")
    assert IMK.hex() not in str(caught.value).lower()


@pytest.mark.parametrize(
    "fields, message",
    [
        (("3DES", "A", "emv_csk", "cmac8"), "does not fit"),
        (("AES-128", "A", "emv_csk", "alg3_pad2"), "does not fit"),
        (("SM4", "A", "pboc", "cmac8"), "3DES only"),
    ],
)
def test_impossible_schemes_are_refused(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        Scheme(*fields)
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(dict(zip(Scheme.__struct_fields__, fields)), Scheme)


def test_named_schemes() -> None:
    assert scheme_named("pboc-3des") == Scheme("3DES", "A", "pboc", "alg3_pad2")
    with pytest.raises(ValueError, match="scheme must be one of"):
        scheme_named("visa-cvn99")
