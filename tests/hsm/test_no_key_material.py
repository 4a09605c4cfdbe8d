"""No key material in logs, exception messages, repr(), metrics, CLI output, the key store
file or the database, after a run with known keys through every path of the key service."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest
from prometheus_client import REGISTRY, generate_latest

from engine.cli import main
from engine.config import Config
from hsm.scheme import SCHEMES, application_cryptogram, icc_master_key, session_key
from hsm.service import ArqcRequest, open_key_service

COMPONENT_1 = bytes.fromhex("11" * 16)
COMPONENT_2 = bytes.fromhex("1032547698BADCFEEFCDAB8967452301")
IMK = bytes(a ^ b for a, b in zip(COMPONENT_1, COMPONENT_2))
PAN, PSN, ATC = "4761739001010010", "01", b"\x00\x2a"


def _forms(secret: bytes) -> list[bytes]:
    """Every way a key might leak: raw, hex in either case, base64."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)]


def _assert_clean(where: str, blob: bytes | str, secrets: dict[str, bytes]) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for name, secret in secrets.items():
        for form in _forms(secret):
            assert form not in data, f"{name} found in {where}"


async def _database_dump(pool) -> bytes:
    async with pool.acquire() as connection:
        tables = await connection.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND table_type = 'BASE TABLE'"
        )
        rows = []
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            rows += [repr(dict(row)) for row in await connection.fetch(f"SELECT * FROM {name}")]
    return "\n".join(rows).encode()


async def test_no_key_material_anywhere(tmp_path, monkeypatch, capsys, caplog, pool) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    monkeypatch.delenv("ONECARD_HSM_BACKEND", raising=False)
    seen: list[str] = []

    async def cli(*argv: str) -> int:
        # The CLI runs its own event loop, so it runs on a thread of its own here.
        return await asyncio.to_thread(main, list(argv))

    # The ceremony, including its refusals.
    assert await cli("keys", "init") == 0
    base = [
        "keys",
        "import",
        "--type",
        "imk-ac",
        "--alg",
        "3des",
        "--scheme",
        "emv-csk-3des",
        "--component",
        COMPONENT_1.hex(),
        "--component",
        COMPONENT_2.hex(),
    ]
    assert await cli(*base, "--label", "imk", "--kcv", "08D7B5") == 1
    assert await cli(*base, "--label", "imk", "--kcv", "08D7B4") == 0
    assert await cli(*base, "--label", "imk", "--kcv", "08D7B4") == 1
    for key_type in ("bank-mac", "pan-token", "field-enc"):
        assert await cli("keys", "generate", "--label", key_type, "--type", key_type) == 0
    assert await cli("keys", "rotate", "--label", "field-enc") == 0
    assert await cli("keys", "list") == 0 and await cli("keys", "list", "--json") == 0

    service = open_key_service(Config.from_env())
    scheme = SCHEMES["emv-csk-3des"]
    card_key = icc_master_key(scheme, IMK, PAN, PSN)
    ac_key = session_key(scheme, card_key, ATC)
    data = bytes(range(40))
    good = ArqcRequest(
        "imk", PAN, PSN, ATC, b"", data, application_cryptogram(scheme, ac_key, data)
    )
    bad = ArqcRequest("imk", PAN, PSN, ATC, b"", data, bytes(8))
    await service.verify_arqc_batch(
        [good, bad, ArqcRequest("imk", "x", PSN, ATC, b"", data, bytes(8))]
    )
    await service.generate_arpc(good, 1, arc=b"00")
    await service.generate_arpc(good, 2, csu=bytes(4), key="icc_master_key")
    await service.verify_mac(
        "bank-mac", b"pacs.008", await service.generate_mac("bank-mac", b"pacs.008")
    )
    await service.tokenize_pan(PAN)
    sealed = await service.encrypt_field(b"name", b"row:1")
    failing_calls = [
        lambda: service.generate_arpc(bad, 1, arc=b"00"),
        lambda: service.decrypt_field(sealed, b"row:2"),
        lambda: service.import_key("imk", "imk-ac", "3des", IMK, "emv-csk-3des"),
        lambda: service.import_key("imk2", "imk-ac", "3des", IMK + b"\x01", "emv-csk-3des"),
        lambda: service.import_key("imk2", "imk-ac", "aes", IMK, "emv-csk-3des"),
        lambda: service.generate_mac("field-enc", b"m"),
        lambda: service.tokenize_pan(IMK.hex()),
    ]
    for call in failing_calls:
        with pytest.raises(Exception) as caught:
            await call()
        seen += [str(caught.value), repr(caught.value)]

    secrets = {
        "issuer master key": IMK,
        "component 1": COMPONENT_1,
        "component 2": COMPONENT_2,
        "ICC master key": card_key,
        "session key": ac_key,
        "local master key": (tmp_path / "keys" / "master.key").read_bytes(),
    }
    for label, key in service._keys.items():
        for version, value in enumerate(key.versions, start=1):
            secrets[f"{label} v{version}"] = value
    seen += [
        repr(service),
        repr(good),
        repr(list(service._keys.values())),
        repr(service._card_keys),
    ]
    seen += [repr(info) for info in await service.list_keys()]
    await service.close()

    output = capsys.readouterr()
    _assert_clean("CLI stdout", output.out, secrets)
    _assert_clean("CLI stderr", output.err, secrets)
    _assert_clean("logs", "\n".join(record.getMessage() for record in caplog.records), secrets)
    _assert_clean("exception messages and repr()", "\n".join(seen), secrets)
    _assert_clean("metrics", generate_latest(REGISTRY), secrets)
    _assert_clean("key store file", (tmp_path / "keys" / "keystore.json").read_bytes(), secrets)
    _assert_clean("database", await _database_dump(pool), secrets)
    assert b"onecard_hsm_arqc_total" in generate_latest(REGISTRY)


@pytest.mark.parametrize("leak", [IMK, IMK.hex(), IMK.hex().upper(), base64.b64encode(IMK)])
def test_the_scan_finds_a_leak(leak) -> None:
    blob = b"before " + (leak if isinstance(leak, bytes) else leak.encode()) + b" after"
    with pytest.raises(AssertionError, match="issuer master key found in sample"):
        _assert_clean("sample", blob, {"issuer master key": IMK})


async def test_no_key_material_anywhere_with_the_pkcs11_backend(
        softhsm, tmp_path, monkeypatch, capsys, caplog) -> None:
    """The same scan on a SoftHSM2 token: CLI ceremony, every service path, TokenError
    messages (a bad PIN, a token failure), repr() of the token service, logs, metrics."""
    import uuid

    from pkcs11.exceptions import DeviceError

    from hsm.errors import TokenError
    from hsm.token import TokenKeyService

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    for name, value in softhsm.items():
        monkeypatch.setenv(name, value)
    run = uuid.uuid4().hex[:8]  # the session's token is shared: labels of this test only
    imk_label, mac_label, token_label, field_label = (
        f"{name}-{run}" for name in ("imk", "mac", "tok", "fld"))
    seen: list[str] = []

    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(main, list(argv))

    base = ["keys", "import", "--type", "imk-ac", "--alg", "3des", "--scheme", "emv-csk-3des",
            "--component", COMPONENT_1.hex(), "--component", COMPONENT_2.hex(),
            "--label", imk_label]
    assert await cli(*base, "--kcv", "08D7B5") == 1
    assert await cli(*base, "--kcv", "08D7B4") == 0
    assert await cli(*base, "--kcv", "08D7B4") == 1
    for label, key_type in ((mac_label, "bank-mac"), (token_label, "pan-token"),
                            (field_label, "field-enc")):
        assert await cli("keys", "generate", "--label", label, "--type", key_type) == 0
    assert await cli("keys", "rotate", "--label", field_label) == 0
    assert await cli("keys", "list") == 0 and await cli("keys", "list", "--json") == 0

    service = open_key_service(Config.from_env())
    assert isinstance(service, TokenKeyService)
    scheme = SCHEMES["emv-csk-3des"]
    card_key = icc_master_key(scheme, IMK, PAN, PSN)
    ac_key = session_key(scheme, card_key, ATC)
    data = bytes(range(40))
    good = ArqcRequest(imk_label, PAN, PSN, ATC, b"", data,
                       application_cryptogram(scheme, ac_key, data))
    bad = ArqcRequest(imk_label, PAN, PSN, ATC, b"", data, bytes(8))
    await service.verify_arqc_batch(
        [good, bad, ArqcRequest(imk_label, "x", PSN, ATC, b"", data, bytes(8))])
    await service.generate_arpc(good, 1, arc=b"00")
    await service.verify_mac(mac_label, b"pacs.008", await service.generate_mac(mac_label, b"pacs.008"))
    await service.tokenize_pan(PAN, token_label)
    sealed = await service.encrypt_field(b"name", b"row:1", field_label)
    failing_calls = [
        lambda: service.generate_arpc(bad, 1, arc=b"00"),
        lambda: service.decrypt_field(sealed, b"row:2", field_label),
        lambda: service.import_key(imk_label, "imk-ac", "3des", IMK, "emv-csk-3des"),
        lambda: service.import_key(f"sm4-{run}", "imk-ac", "sm4", IMK, "pboc-sm4"),
        lambda: service.import_key(f"imk2-{run}", "imk-ac", "aes", IMK, "emv-csk-3des"),
        lambda: service.generate_mac(field_label, b"m"),
        lambda: service.tokenize_pan(IMK.hex(), token_label),
    ]
    for call in failing_calls:
        with pytest.raises(Exception) as caught:
            await call()
        seen += [str(caught.value), repr(caught.value)]

    # A token failing mid-operation, with key bytes in the driver's own error: the
    # TokenError the service raises carries none of them.
    def failing_sign(*args):
        raise DeviceError(IMK, IMK.hex(), card_key.hex().upper())

    monkeypatch.setattr(service, "_sign", failing_sign)
    with pytest.raises(TokenError) as caught:
        await service.generate_mac(mac_label, b"pacs.008")
    seen += [str(caught.value), repr(caught.value)]
    assert caught.value.__suppress_context__  # a traceback never shows the driver's error
    with pytest.raises(TokenError) as caught:  # a refused PIN
        open_key_service(Config.from_env(), environ={**softhsm, "ONECARD_PKCS11_PIN": "0000-bad"})
    seen += [str(caught.value), repr(caught.value)]

    seen += [repr(service), repr(good), repr(service._card_keys), repr(list(service._imks.values()))]
    seen += [repr(info) for info in await service.list_keys()]
    await service.close()

    secrets = {
        "issuer master key": IMK,
        "component 1": COMPONENT_1,
        "component 2": COMPONENT_2,
        "ICC master key": card_key,
        "session key": ac_key,
        "token PIN": softhsm["ONECARD_PKCS11_PIN"].encode(),
        "refused PIN": b"0000-bad",
    }
    output = capsys.readouterr()
    _assert_clean("CLI stdout", output.out, secrets)
    _assert_clean("CLI stderr", output.err, secrets)
    _assert_clean("logs", "\n".join(record.getMessage() for record in caplog.records), secrets)
    _assert_clean("exception messages and repr()", "\n".join(seen), secrets)
    _assert_clean("metrics", generate_latest(REGISTRY), secrets)
    assert not (tmp_path / "keys" / "keystore.json").exists()  # nothing on disk: all in the token
