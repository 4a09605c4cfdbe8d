"""The pkcs11 backend on SoftHSM2: the vectors verify in the token, and no key leaves it."""

from __future__ import annotations

import uuid

import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error

from engine.config import Config
from hsm.errors import KeyExistsError, RefusedError, TokenError, UnsupportedError
from hsm.scheme import SCHEMES, application_cryptogram, icc_master_key, session_key
from hsm.service import ArqcRequest, ArqcResult, open_key_service
from hsm.vectors import ServiceVerifier, check_case, load_cases

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@pytest.fixture
async def token(softhsm, tmp_path):
    service = open_key_service(Config(home=tmp_path, database_url=None), environ=softhsm)
    yield service
    await service.close()


def _label(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_every_vector_case_in_the_token(token, shared_data) -> None:
    cases = [c for c in load_cases(shared_data / "emv" / "vectors.json") if c.alg != "SM4"]
    verifier = await ServiceVerifier.prepare(token, cases, label_prefix=_label("vec") + "-")
    failures = {case.id: check_case(case, verifier) for case in cases}
    assert {case_id: f for case_id, f in failures.items() if f} == {}
    assert len(cases) == 68


async def test_sm4_is_refused_with_a_clear_error(token) -> None:
    with pytest.raises(UnsupportedError, match="SM4 cannot run inside the PKCS#11 token"):
        await token.import_key(_label("sm4"), "imk-ac", "sm4", IMK, "pboc-sm4")


async def test_results_and_arpc_refusal(token) -> None:
    label = _label("imk")
    await token.import_key(label, "imk-ac", "3des", IMK, "emv-csk-3des")
    with pytest.raises(KeyExistsError):
        await token.import_key(label, "imk-ac", "3des", IMK, "emv-csk-3des")
    scheme = SCHEMES["emv-csk-3des"]
    sk = session_key(scheme, icc_master_key(scheme, IMK, "4761739001010010", "01"), b"\x00\x07")
    data = bytes(range(37))
    good = ArqcRequest(
        label,
        "4761739001010010",
        "01",
        b"\x00\x07",
        b"",
        data,
        application_cryptogram(scheme, sk, data),
    )
    bad = ArqcRequest(label, "4761739001010010", "01", b"\x00\x07", b"", data, bytes(8))
    short = ArqcRequest(label, "4761739001010010", "01", b"\x00", b"", data, bytes(8))
    nobody = ArqcRequest("nobody", "4761739001010010", "01", b"\x00\x07", b"", data, bytes(8))
    assert await token.verify_arqc_batch([good, bad, short, nobody]) == [
        ArqcResult.verified,
        ArqcResult.arqc_mismatch,
        ArqcResult.input_invalid,
        ArqcResult.key_not_found,
    ]
    assert len(await token.generate_arpc(good, 1, arc=b"00")) == 8
    with pytest.raises(RefusedError):
        await token.generate_arpc(bad, 1, arc=b"00")


async def test_data_keys_in_the_token(token) -> None:
    mac_label, token_label, field_label = _label("mac"), _label("tok"), _label("fld")
    await token.generate_key(mac_label, "bank-mac")
    await token.generate_key(token_label, "pan-token")
    await token.generate_key(field_label, "field-enc")
    mac = await token.generate_mac(mac_label, b"camt.053")
    assert await token.verify_mac(mac_label, b"camt.053", mac)
    assert not await token.verify_mac(mac_label, b"camt.054", mac)
    pan_token = await token.tokenize_pan("4761739001010010", token_label)
    assert pan_token == await token.tokenize_pan("4761739001010010", token_label)
    sealed = await token.encrypt_field("李四".encode(), b"row:7", field_label)
    assert await token.decrypt_field(sealed, b"row:7", field_label) == "李四".encode()
    with pytest.raises(RefusedError, match="altered"):
        await token.decrypt_field(sealed, b"row:8", field_label)
    assert (await token.rotate_key(field_label)).version == 2
    assert await token.decrypt_field(sealed, b"row:7", field_label) == "李四".encode()
    labels = {info.label: info for info in await token.list_keys()}
    assert labels[field_label].version == 2 and labels[mac_label].alg == "HMAC-SHA256"


async def test_no_key_value_can_be_read_out_of_the_token(token) -> None:
    label = _label("imk")
    await token.import_key(label, "imk-ac", "3des", IMK, "visa-cvn10")
    await token.import_key(_label("aes"), "imk-ac", "aes", IMK, "emv-aes")
    await token.generate_key(_label("mac"), "bank-mac")
    scheme = SCHEMES["visa-cvn10"]
    mk = icc_master_key(scheme, IMK, "4761739001010010", "00")
    request = ArqcRequest(
        label,
        "4761739001010010",
        "00",
        b"\x00\x01",
        b"",
        b"x",
        application_cryptogram(scheme, mk, b"x"),
    )
    assert (
        await token.verify_arqc(request) == ArqcResult.verified
    )  # leaves derived card keys cached
    session = token._session
    objects = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
    assert len(objects) >= 5  # token keys plus the cached derived session objects
    for key in objects:
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        # ALWAYS_SENSITIVE is false by the standard for imported keys and what derives
        # from them, so SENSITIVE and EXTRACTABLE are what matter.
        with pytest.raises(PKCS11Error):
            key[Attribute.VALUE]
    wrapping = session.generate_key(
        KeyType.AES,
        256,
        template={Attribute.TOKEN: False, Attribute.WRAP: True, Attribute.EXTRACTABLE: False},
    )
    for key in objects:
        with pytest.raises(PKCS11Error):
            wrapping.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP)
    wrapping.destroy()


async def test_bad_pin_is_a_clear_error(softhsm, tmp_path) -> None:
    with pytest.raises(TokenError, match="cannot open PKCS#11 token") as caught:
        open_key_service(
            Config(home=tmp_path, database_url=None),
            environ={**softhsm, "ONECARD_PKCS11_PIN": "wrong-pin"},
        )
    assert "wrong-pin" not in str(caught.value)
