"""The soft key service: ARQC verification against the vectors, ARPC refusal, data keys,
store safety, cache bounds."""

from __future__ import annotations

import os

import pytest

from engine.config import Config
from hsm.errors import HsmError, KeyExistsError, KeyNotFoundError, KeyStoreError, RefusedError
from hsm.service import ArqcRequest, ArqcResult, open_key_service
from hsm.soft import SoftKeyService
from hsm.vectors import load_cases

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@pytest.fixture
async def service(tmp_path):
    SoftKeyService.init(tmp_path / "keys")
    service = open_key_service(Config(home=tmp_path, database_url=None), backend="soft")
    yield service
    await service.close()


def _request(label="imk", **fields) -> ArqcRequest:
    values = dict(
        key_label=label,
        pan="4761739001010010",
        psn="01",
        atc=b"\x00\x01",
        un=bytes.fromhex("74439FF6"),
        transaction_data=bytes(29),
        arqc=bytes(8),
    )
    values.update(fields)
    return ArqcRequest(**values)


async def _with_arqc(service, **fields) -> ArqcRequest:
    from hsm.scheme import SCHEMES, application_cryptogram, icc_master_key, session_key

    request = _request(**fields)
    scheme = SCHEMES["emv-csk-3des"]
    mk = icc_master_key(scheme, IMK, request.pan, request.psn)
    arqc = application_cryptogram(
        scheme, session_key(scheme, mk, request.atc), request.transaction_data
    )
    return _request(**{**fields, "arqc": arqc})


async def test_vector_cases_verify_through_the_service(service, shared_data) -> None:
    cases = [c for c in load_cases(shared_data / "emv" / "vectors.json") if c.kind == "arqc"]
    schemes = {}
    from hsm.scheme import SCHEMES

    by_value = {scheme: name for name, scheme in SCHEMES.items()}
    requests, expected = [], []
    for case in cases:
        name = by_value.get(case.to_scheme())
        if name is None:
            continue  # schemes the engine does not name (e.g. pad1 with a session key)
        label = f"imk-{case.issuer_master_key_hex[:8]}-{name}"
        if label not in schemes:
            await service.import_key(
                label,
                "imk-ac",
                case.alg.split("-")[0],
                bytes.fromhex(case.issuer_master_key_hex),
                name,
            )
            schemes[label] = name
        requests.append(
            ArqcRequest(
                key_label=label,
                pan=case.pan,
                psn=case.pan_sequence_number,
                atc=bytes.fromhex(case.atc_hex or "0000"),
                un=bytes.fromhex(case.unpredictable_number_hex or ""),
                transaction_data=bytes.fromhex(case.transaction_data_hex),
                arqc=bytes.fromhex(case.arqc_hex),
            )
        )
        expected.append(ArqcResult.verified if case.expect == "valid" else ArqcResult.arqc_mismatch)
    assert len(requests) >= 55
    assert await service.verify_arqc_batch(requests) == expected
    # Warm cache gives the same answers.
    assert await service.verify_arqc_batch(requests) == expected


async def test_results_in_priority_order(service) -> None:
    await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    good = await _with_arqc(service)
    results = await service.verify_arqc_batch(
        [
            good,
            _request(label="nobody"),
            _request(label="nobody", atc=b"\x01"),
            _request(atc=b"\x01"),
            _request(pan="4761-7390"),
            _request(arqc=bytes(7)),
            _request(),
        ]
    )
    assert results == [
        ArqcResult.verified,
        ArqcResult.key_not_found,
        ArqcResult.key_not_found,
        ArqcResult.input_invalid,
        ArqcResult.input_invalid,
        ArqcResult.input_invalid,
        ArqcResult.arqc_mismatch,
    ]
    assert await service.verify_arqc(good) == ArqcResult.verified


async def test_arpc_only_for_a_verified_arqc(service) -> None:
    await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    good = await _with_arqc(service)
    from hsm.scheme import SCHEMES, generate_arpc, icc_master_key, session_key

    scheme = SCHEMES["emv-csk-3des"]
    sk = session_key(scheme, icc_master_key(scheme, IMK, good.pan, good.psn), good.atc)
    assert await service.generate_arpc(good, 1, arc=b"00") == generate_arpc(
        scheme, sk, good.arqc, 1, arc=b"00"
    )
    assert len(await service.generate_arpc(good, 2, csu=bytes(4))) == 4
    with pytest.raises(RefusedError, match="no ARPC for an ARQC that did not verify"):
        await service.generate_arpc(_request(), 1, arc=b"00")


async def test_data_keys(service) -> None:
    await service.generate_key("bank1-mac", "bank-mac")
    await service.generate_key("pan-token", "pan-token")
    await service.generate_key("field-enc", "field-enc")
    mac = await service.generate_mac("bank1-mac", b"pacs.008")
    assert len(mac) == 32
    assert await service.verify_mac("bank1-mac", b"pacs.008", mac)
    assert not await service.verify_mac("bank1-mac", b"pacs.009", mac)
    token = await service.tokenize_pan("4761739001010010")
    assert (
        token
        == await service.tokenize_pan("4761739001010010")
        != await service.tokenize_pan("4761739001010028")
    )
    assert len(token) == 32 and "4761739001010010" not in token
    sealed = await service.encrypt_field("张三".encode(), b"cardholder.name:42")
    assert await service.decrypt_field(sealed, b"cardholder.name:42") == "张三".encode()
    with pytest.raises(RefusedError, match="altered"):
        await service.decrypt_field(sealed, b"cardholder.name:43")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(RefusedError, match="altered"):
        await service.decrypt_field(tampered, b"cardholder.name:42")
    rotated = await service.rotate_key("field-enc")
    assert rotated.version == 2
    assert await service.decrypt_field(sealed, b"cardholder.name:42") == "张三".encode()
    assert (await service.encrypt_field(b"x", b"a"))[1:5] == (2).to_bytes(4, "big")
    with pytest.raises(RefusedError, match="do not rotate"):
        await service.rotate_key("pan-token")
    with pytest.raises(KeyNotFoundError, match="no bank-mac key labelled 'pan-token'"):
        await service.generate_mac("pan-token", b"m")


async def test_key_management_errors(service) -> None:
    info = await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    assert (info.label, info.key_type, info.alg, info.kcv, info.scheme) == (
        "imk",
        "imk-ac",
        "3DES",
        "08D7B4",
        "emv-csk-3des",
    )
    with pytest.raises(KeyExistsError):
        await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    with pytest.raises(HsmError, match="scheme emv-aes runs AES-128, not 3DES"):
        await service.import_key("imk2", "imk-ac", "3des", IMK, "emv-aes")
    with pytest.raises(HsmError, match="must be 16 bytes"):
        await service.import_key("imk2", "imk-ac", "3des", IMK[:8], "emv-csk-3des")
    with pytest.raises(HsmError, match="label must be"):
        await service.import_key("bad label", "imk-ac", "3des", IMK, "emv-csk-3des")
    assert [k.label for k in await service.list_keys()] == ["imk"]


async def test_keys_imported_elsewhere_are_picked_up(tmp_path, service) -> None:
    other = SoftKeyService.open(tmp_path / "keys")
    await other.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    assert await service.verify_arqc(await _with_arqc(service)) == ArqcResult.verified


def test_refuses_a_master_key_readable_by_others(tmp_path) -> None:
    folder = tmp_path / "keys"
    assert SoftKeyService.init(folder)
    assert not SoftKeyService.init(folder)
    os.chmod(folder / "master.key", 0o640)
    with pytest.raises(KeyStoreError, match="accessible by group or others"):
        SoftKeyService.open(folder)
    os.chmod(folder / "master.key", 0o600)
    SoftKeyService.open(folder)


def test_refuses_a_missing_master_key(tmp_path) -> None:
    with pytest.raises(KeyStoreError, match="run `onecard keys init`"):
        SoftKeyService.open(tmp_path)


async def test_a_store_under_another_master_key_does_not_open(tmp_path, service) -> None:
    await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    (tmp_path / "keys" / "master.key").unlink()
    SoftKeyService.init(tmp_path / "keys")
    with pytest.raises(KeyStoreError, match="does not open under the master key"):
        SoftKeyService.open(tmp_path / "keys")


@pytest.mark.parametrize(
    "damage",
    [
        {"wrapped": ["zz" * 40]},  # not hex
        {"wrapped": []},  # no version at all
        {"info": {"alg": "XX"}},  # an algorithm no key runs
        {"info": {"scheme": "no-such-scheme"}},
        {"info": {"version": 5}},  # claims versions the store does not hold
    ],
)
async def test_a_damaged_store_entry_is_a_key_store_error(tmp_path, service, damage) -> None:
    import json

    await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    path = tmp_path / "keys" / "keystore.json"
    document = json.loads(path.read_text())
    entry = document["keys"][0]
    entry["info"].update(damage.get("info", {}))
    entry.update({k: v for k, v in damage.items() if k != "info"})
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="'imk'") as raised:
        SoftKeyService.open(tmp_path / "keys")
    assert IMK.hex() not in str(raised.value).lower()


async def test_card_key_cache_is_bounded(tmp_path) -> None:
    SoftKeyService.init(tmp_path)
    service = SoftKeyService.open(tmp_path, card_keys_max=3)
    await service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des")
    pans = [f"476173900101{n:04d}" for n in range(10)]
    await service.verify_arqc_batch([_request(pan=pan) for pan in pans])
    assert len(service._card_keys) == 3
    assert "entries=3" in repr(service)


@pytest.mark.parametrize(
    "fields",
    [
        {"pan": None},
        {"psn": 1},
        {"atc": "0001"},
        {"un": None},
        {"transaction_data": None},
        {"arqc": "0011223344556677"},
        {"r": bytes(8)},
    ],
)
async def test_malformed_fields_are_input_invalid_not_exceptions(service, fields) -> None:
    await service.import_key("imk", "imk-ac", "3des", IMK, "mastercard-skd")
    assert await service.verify_arqc(_request(**fields)) == ArqcResult.input_invalid


async def test_two_services_on_one_store_keep_each_others_keys(tmp_path) -> None:
    SoftKeyService.init(tmp_path)
    first, second = SoftKeyService.open(tmp_path), SoftKeyService.open(tmp_path)
    await first.generate_key("fields", "field-enc")
    await second.generate_key("bank1", "bank-mac")
    await first.rotate_key("fields")
    assert [(k.label, k.version) for k in await second.list_keys()] == [("bank1", 1), ("fields", 2)]
    with pytest.raises(KeyExistsError):
        await second.generate_key("fields", "field-enc")


async def test_batch_data_key_calls_equal_one_call_per_value(service) -> None:
    await service.generate_key("bank1-mac", "bank-mac")
    await service.generate_key("pan-token", "pan-token")
    messages = [b"510121195803142150", b"", b"x" * 100]
    assert await service.generate_macs("bank1-mac", messages) == [
        await service.generate_mac("bank1-mac", m) for m in messages
    ]
    pans = ["4761739001010010", "6222026465816998396"]
    assert await service.tokenize_pans(pans) == [await service.tokenize_pan(p) for p in pans]
    assert await service.generate_macs("bank1-mac", []) == []
    with pytest.raises(ValueError, match="pan must be 8 to 19 decimal digits") as refused:
        await service.tokenize_pans(["4761739001010010", "4761-7390"])
    assert "4761" not in str(refused.value)
    with pytest.raises(KeyNotFoundError, match="no pan-token key labelled 'bank1-mac'"):
        await service.tokenize_pans(pans, "bank1-mac")
