"""The ``pkcs11`` key service backend: keys live in a PKCS#11 token and never leave it.

Tested against SoftHSM2 2.6.1 through python-pkcs11. What runs where:

- Issuer master keys are token objects, sensitive, never extractable, usable only to
  derive (``CKA_DERIVE`` and nothing else). The key's metadata (:class:`KeyInfo`) is
  kept in its ``CKA_ID`` as JSON, so the token is the single source of truth.
- ICC master keys and session keys are derived inside the token with
  ``CKM_DES3_ECB_ENCRYPT_DATA`` / ``CKM_AES_ECB_ENCRYPT_DATA`` over the same inputs the
  pure functions encrypt (:func:`hsm.scheme.master_key_input`,
  :func:`hsm.scheme.session_key_input`); every derived key is a session object,
  sensitive and non-extractable (the template says so: SoftHSM would otherwise derive an
  extractable key from a sensitive one).
- MAC algorithm 3 runs in the token: 3DES-CBC under KL || KL over every block but the
  last, then 3DES-CBC under KL || KR from that chaining value. KL || KL is derived
  alongside KL || KR from the same parent by encrypting the first input block twice, so
  no single-DES mechanism is needed (SoftHSM 2.6.1 only has those with OpenSSL's legacy
  provider loaded).
- CMAC uses ``CKM_AES_CMAC``; bank MACs and PAN tokens ``CKM_SHA256_HMAC``; sealed fields
  ``CKM_AES_GCM``.
- SM4 has no PKCS#11 mechanism SoftHSM2 implements: SM4 keys are refused with
  :class:`UnsupportedError` (use the soft backend, or a token with vendor SM4 support).

A session is not thread-safe, so every token call runs on one worker thread; a batch of
ARQCs is one hand-off to it.

What this cannot do: stop a holder of the user PIN from deriving an *extractable* key
with their own PKCS#11 client (SoftHSM2 does not enforce ``CKA_DERIVE_TEMPLATE``); the
PIN must be guarded like the keys.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Sequence

import msgspec
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error

from hsm.arpc import ARC_SIZE, ARPC_1_SIZE, ARPC_2_SIZE, CSU_SIZE, PROPRIETARY_AUTH_DATA_SIZE_MAX
from hsm.cache import LruCache
from hsm.cryptogram import CRYPTOGRAM_SIZE, TRANSACTION_DATA_SIZE_MAX, cryptograms_equal
from hsm.datakeys import FIELD_FORMAT, FIELD_HEADER_SIZE, NONCE_SIZE, TOKEN_SIZE, field_version
from hsm.errors import KeyExistsError, KeyNotFoundError, RefusedError, TokenError, UnsupportedError
from hsm.inputs import require_length, require_pan
from hsm.mac import pad
from hsm.metadata import describe_key, key_size, utc_now
from hsm.metrics import ArqcCounters
from hsm.scheme import Scheme, master_key_input, scheme_named, session_key_input
from hsm.service import (
    DATA_KEY_ALGS,
    ArqcRequest,
    ArqcResult,
    KeyInfo,
    KeyService,
    check_batch,
    check_label,
    refuse_arpc,
)
from hsm.service import KeyType as ServiceKeyType

CARD_KEYS_MAX = 4096
_INFO_DECODER = msgspec.json.Decoder(KeyInfo)
_DES_BLOCK = 8


def _string_data(data: bytes) -> tuple[bytes, ctypes.Array]:
    """CK_KEY_DERIVATION_STRING_DATA {pData, ulLen} packed by hand, with the buffer that
    must stay alive while the token reads it (python-pkcs11 0.10.1 does not build this
    parameter for CKM_DES3_ECB_ENCRYPT_DATA)."""
    buffer = ctypes.create_string_buffer(data, len(data))
    return struct.pack("PL", ctypes.addressof(buffer), len(data)), buffer


def _secret_template(
    key_type: KeyType, *, derive=False, encrypt=False, decrypt=False, sign=False, token=False
) -> dict:
    # Every capability is spelled out so no library default can add one; the value is
    # never readable (SENSITIVE) and never leaves wrapped (EXTRACTABLE false).
    return {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: key_type,
        Attribute.TOKEN: token,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        Attribute.DERIVE: derive,
        Attribute.ENCRYPT: encrypt,
        Attribute.DECRYPT: decrypt,
        Attribute.SIGN: sign,
        Attribute.VERIFY: False,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.VALUE_LEN: pkcs11.DEFAULT,
    }


_TOKEN_KEY_TYPES = {"3DES": KeyType.DES2, "AES-128": KeyType.AES}
_DERIVE_MECHANISMS = {
    "3DES": Mechanism.DES3_ECB_ENCRYPT_DATA,
    "AES-128": Mechanism.AES_ECB_ENCRYPT_DATA,
}


def _require_token_alg(alg: str, label: str) -> KeyType:
    key_type = _TOKEN_KEY_TYPES.get(alg)
    if key_type is None:
        raise UnsupportedError(
            f"key {label!r}: {alg} cannot run inside the PKCS#11 token (it has no {alg} "
            "mechanisms); keep SM4 issuer keys in the soft backend"
        )
    return key_type


class _Imk:
    __slots__ = ("info", "scheme", "key")

    def __init__(self, info: KeyInfo, key) -> None:
        self.info = info
        self.scheme: Scheme = scheme_named(info.scheme or "")
        self.key = key

    def __repr__(self) -> str:
        return f"_Imk(label={self.info.label!r})"


class _CardKeys:
    """Token handles of a card's ICC master key (and, with no session key, its KL || KL)."""

    __slots__ = ("master_key", "left")

    def __init__(self, master_key, left) -> None:
        self.master_key = master_key
        self.left = left

    def __repr__(self) -> str:
        return "_CardKeys(...)"

    def destroy(self) -> None:
        for key in (self.master_key, self.left):
            if key is not None:
                key.destroy()


class TokenKeyService(KeyService):
    """:class:`~hsm.service.KeyService` on a PKCS#11 token (one logged-in session)."""

    backend = "pkcs11"

    def __init__(self, session, card_keys_max: int = CARD_KEYS_MAX) -> None:
        self._session = session
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkcs11")
        self._imks: dict[str, _Imk] = {}
        self._card_keys: LruCache[tuple[str, str, str], _CardKeys] = LruCache(
            card_keys_max, _CardKeys.destroy
        )
        self._arqc_counters = ArqcCounters(self.backend)

    def __repr__(self) -> str:
        return f"TokenKeyService(imks={len(self._imks)}, card_keys={self._card_keys!r})"

    @classmethod
    def open(
        cls, module: str, token_label: str, pin: str, card_keys_max: int = CARD_KEYS_MAX
    ) -> "TokenKeyService":
        """Log in to the token labelled ``token_label`` through the PKCS#11 ``module``.

        Raises
        ------
        TokenError
            The module does not load, the token is absent, or the PIN is refused (the
            message never contains the PIN).
        """
        try:
            token = pkcs11.lib(module).get_token(token_label=token_label)
            session = token.open(user_pin=pin, rw=True)
        except (PKCS11Error, RuntimeError, OSError) as error:
            raise TokenError(
                f"cannot open PKCS#11 token {token_label!r} via {module}: {type(error).__name__}"
            ) from None
        return cls(session, card_keys_max)

    async def _call(self, function, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except PKCS11Error as error:
            raise TokenError(f"PKCS#11 token error: {type(error).__name__}") from None

    # Finding keys

    def _objects(self, label: str | None = None) -> list[tuple[KeyInfo, object]]:
        template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}
        if label is not None:
            template[Attribute.LABEL] = label
        found = []
        for key in self._session.get_objects(template):
            try:
                found.append((_INFO_DECODER.decode(key[Attribute.ID]), key))
            except (msgspec.DecodeError, PKCS11Error):
                continue  # not one of ours
        return sorted(found, key=lambda pair: (pair[0].label, pair[0].version))

    def _versions(self, label: str, key_type: ServiceKeyType) -> list[tuple[KeyInfo, object]]:
        versions = [pair for pair in self._objects(label) if pair[0].key_type == key_type]
        if not versions:
            raise KeyNotFoundError(f"no {key_type} key labelled {label!r}")
        return versions

    def _imk(self, label: str) -> _Imk:
        imk = self._imks.get(label)
        if imk is None:
            info, key = self._versions(label, "imk-ac")[-1]
            imk = self._imks[label] = _Imk(info, key)
        return imk

    # Derivation and MACs inside the token

    def _derive(self, parent, alg: str, data: bytes, **capabilities):
        key_type = _TOKEN_KEY_TYPES[alg]
        template = _secret_template(key_type, **capabilities)
        parameter, buffer = _string_data(data)
        if alg == "AES-128":
            parameter = data  # python-pkcs11 packs CKM_AES_ECB_ENCRYPT_DATA itself
            template[Attribute.VALUE_LEN] = 16  # DES keys have a fixed length; AES keys must say
        key = parent.derive_key(
            key_type,
            128,
            mechanism=_DERIVE_MECHANISMS[alg],
            mechanism_param=parameter,
            template=template,
        )
        del buffer
        return key

    def _card(self, imk: _Imk, pan: str, psn: str) -> _CardKeys:
        cache_key = (imk.info.label, pan, psn)
        card = self._card_keys.get(cache_key)
        if card is None:
            alg = imk.scheme.alg
            data = master_key_input(imk.scheme, pan, psn)
            master_key = self._derive(
                imk.key, alg, data, derive=True, encrypt=True, sign=alg != "3DES"
            )
            left = None
            if imk.scheme.session_key_derivation == "none" and alg == "3DES":
                left = self._derive(imk.key, alg, data[:_DES_BLOCK] * 2, encrypt=True)
            card = _CardKeys(master_key, left)
            self._card_keys.put(cache_key, card)
        return card

    def _ac_keys(
        self, imk: _Imk, card: _CardKeys, request: ArqcRequest, which: str = "session_key"
    ):
        """(key, its KL || KL for 3DES or None, temporary keys to destroy)."""
        data = session_key_input(imk.scheme, request.atc, request.un, request.r)
        if data is None or which == "icc_master_key":
            if imk.scheme.alg == "3DES" and card.left is None:
                left = self._derive(
                    imk.key,
                    "3DES",
                    master_key_input(imk.scheme, request.pan, request.psn)[:8] * 2,
                    encrypt=True,
                )
                return card.master_key, left, [left]
            return card.master_key, card.left, []
        alg = imk.scheme.alg
        key = self._derive(card.master_key, alg, data, encrypt=True, sign=alg != "3DES")
        if alg != "3DES":
            return key, None, [key]
        try:
            left = self._derive(card.master_key, alg, data[:_DES_BLOCK] * 2, encrypt=True)
        except PKCS11Error:
            key.destroy()
            raise
        return key, left, [key, left]

    @staticmethod
    def _mac(alg: str, key, left, data: bytes, padding: int) -> bytes:
        if alg != "3DES":
            return key.sign(data, mechanism=Mechanism.AES_CMAC)
        blocks = pad(data, _DES_BLOCK, padding)
        chain = bytes(_DES_BLOCK)
        if len(blocks) > _DES_BLOCK:
            chain = left.encrypt(
                blocks[:-_DES_BLOCK], mechanism=Mechanism.DES3_CBC, mechanism_param=chain
            )[-_DES_BLOCK:]
        return key.encrypt(
            blocks[-_DES_BLOCK:], mechanism=Mechanism.DES3_CBC, mechanism_param=chain
        )

    def _verify(self, request: ArqcRequest) -> ArqcResult:
        try:
            imk = self._imk(request.key_label)
        except KeyNotFoundError:
            return ArqcResult.key_not_found
        try:
            require_length("arqc", request.arqc, CRYPTOGRAM_SIZE)
            if len(request.transaction_data) > TRANSACTION_DATA_SIZE_MAX:
                raise ValueError("transaction_data too long")
            card = self._card(imk, request.pan, request.psn)
            key, left, temporary = self._ac_keys(imk, card, request)
        except (ValueError, TypeError):
            return ArqcResult.input_invalid
        try:
            padding = 1 if imk.scheme.ac_mac == "alg3_pad1" else 2
            mac = self._mac(imk.scheme.alg, key, left, bytes(request.transaction_data), padding)
        finally:
            for object_ in temporary:
                object_.destroy()
        if cryptograms_equal(mac[:CRYPTOGRAM_SIZE], request.arqc):
            return ArqcResult.verified
        return ArqcResult.arqc_mismatch

    def _verify_batch(self, requests: Sequence[ArqcRequest]) -> list[ArqcResult]:
        return [self._verify(request) for request in requests]

    async def verify_arqc_batch(self, requests: Sequence[ArqcRequest]) -> list[ArqcResult]:
        check_batch(requests)
        results = await self._call(self._verify_batch, list(requests))
        self._arqc_counters.count(results)
        return results

    def _arpc(self, request, method, arc, csu, proprietary_auth_data, which) -> bytes:
        imk = self._imk(request.key_label)
        if method == 1:
            if arc is None:
                raise ValueError("arc is required for ARPC method 1")
            require_length("arc", arc, ARC_SIZE)
        elif method == 2:
            if csu is None:
                raise ValueError("csu is required for ARPC method 2")
            require_length("csu", csu, CSU_SIZE)
            require_length(
                "proprietary_auth_data",
                proprietary_auth_data,
                *range(PROPRIETARY_AUTH_DATA_SIZE_MAX + 1),
            )
        else:
            raise ValueError(f"ARPC method must be 1 or 2, got {method!r}")
        card = self._card(imk, request.pan, request.psn)
        key, left, temporary = self._ac_keys(imk, card, request, which)
        alg = imk.scheme.alg
        try:
            if method == 1:
                block = (
                    int.from_bytes(request.arqc, "big") ^ int.from_bytes(arc + bytes(6), "big")
                ).to_bytes(8, "big")
                block_size = _DES_BLOCK if alg == "3DES" else 16
                mechanism = Mechanism.DES3_ECB if alg == "3DES" else Mechanism.AES_ECB
                return key.encrypt(block.ljust(block_size, b"\0"), mechanism=mechanism)[
                    :ARPC_1_SIZE
                ]
            data = request.arqc + csu + proprietary_auth_data
            return self._mac(alg, key, left, data, 2)[:ARPC_2_SIZE]
        finally:
            for object_ in temporary:
                object_.destroy()

    async def generate_arpc(
        self,
        request: ArqcRequest,
        method: Literal[1, 2],
        *,
        arc: bytes | None = None,
        csu: bytes | None = None,
        proprietary_auth_data: bytes = b"",
        key: Literal["session_key", "icc_master_key"] = "session_key",
    ) -> bytes:
        refuse_arpc((await self.verify_arqc_batch([request]))[0])
        return await self._call(self._arpc, request, method, arc, csu, proprietary_auth_data, key)

    # Data keys

    def _sign(self, label: str, key_type: ServiceKeyType, message: bytes) -> bytes:
        _, key = self._versions(label, key_type)[-1]
        return key.sign(message, mechanism=Mechanism.SHA256_HMAC)

    async def generate_mac(self, label: str, message: bytes) -> bytes:
        return await self._call(self._sign, label, "bank-mac", bytes(message))

    async def tokenize_pan(self, pan: str, label: str = "pan-token") -> str:
        mac = await self._call(self._sign, label, "pan-token", require_pan(pan).encode("ascii"))
        return mac[:TOKEN_SIZE].hex()

    def _seal(self, label: str, plaintext: bytes, associated_data: bytes) -> bytes:
        info, key = self._versions(label, "field-enc")[-1]
        nonce = os.urandom(NONCE_SIZE)
        header = bytes([FIELD_FORMAT]) + info.version.to_bytes(4, "big") + nonce
        parameters = pkcs11.GCMParams(nonce, header + associated_data, 128)
        return header + key.encrypt(
            plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=parameters
        )

    def _open(self, label: str, sealed: bytes, associated_data: bytes) -> bytes:
        version = field_version(sealed)
        keys = {info.version: key for info, key in self._versions(label, "field-enc")}
        if version not in keys:
            raise RefusedError(
                f"sealed field names key version {version}, which {label!r} does not have"
            )
        header = sealed[:FIELD_HEADER_SIZE]
        parameters = pkcs11.GCMParams(header[5:], header + associated_data, 128)
        try:
            return keys[version].decrypt(
                sealed[FIELD_HEADER_SIZE:], mechanism=Mechanism.AES_GCM, mechanism_param=parameters
            )
        except PKCS11Error:
            raise RefusedError("sealed field or its associated data was altered") from None

    async def encrypt_field(
        self, plaintext: bytes, associated_data: bytes, label: str = "field-enc"
    ) -> bytes:
        return await self._call(self._seal, label, bytes(plaintext), bytes(associated_data))

    async def decrypt_field(
        self, sealed: bytes, associated_data: bytes, label: str = "field-enc"
    ) -> bytes:
        return await self._call(self._open, label, bytes(sealed), bytes(associated_data))

    # Key management

    def _refuse_taken(self, label: str) -> None:
        if self._objects(check_label(label)):
            raise KeyExistsError(f"a key labelled {label!r} already exists")

    def _import(self, label, key_type, alg, key: bytes, scheme) -> KeyInfo:
        info = describe_key(label, key_type, alg, key, scheme)
        if key_type != "imk-ac":
            raise RefusedError(
                "only imk-ac keys are imported; data keys are generated in the token"
            )
        token_type = _require_token_alg(info.alg, label)
        self._refuse_taken(label)
        template = _secret_template(token_type, derive=True, token=True)
        template.update(
            {
                Attribute.VALUE: bytes(key),
                Attribute.LABEL: label,
                Attribute.ID: msgspec.json.encode(info),
            }
        )
        del template[Attribute.VALUE_LEN]
        self._session.create_object(template)
        return info

    async def import_key(
        self, label: str, key_type: ServiceKeyType, alg: str, key: bytes, scheme: str | None = None
    ) -> KeyInfo:
        return await self._call(self._import, label, key_type, alg, key, scheme)

    def _generate(self, label: str, key_type: ServiceKeyType, version: int) -> KeyInfo:
        if key_type == "imk-ac":
            raise RefusedError("imk-ac keys are imported from components, not generated")
        if version == 1:
            self._refuse_taken(label)
        size_bits = key_size(key_type) * 8
        if key_type == "field-enc":
            token_type, mechanism = KeyType.AES, Mechanism.AES_KEY_GEN
            template = _secret_template(token_type, encrypt=True, decrypt=True, token=True)
        else:
            token_type, mechanism = KeyType.GENERIC_SECRET, Mechanism.GENERIC_SECRET_KEY_GEN
            template = _secret_template(token_type, sign=True, token=True)
        del template[Attribute.VALUE_LEN]
        template[Attribute.LABEL] = label
        # Modifiable only so that CKA_ID can take the metadata once the KCV is known;
        # PKCS#11 never lets SENSITIVE go back to false or EXTRACTABLE back to true.
        template[Attribute.MODIFIABLE] = True
        key = self._session.generate_key(
            token_type, size_bits, mechanism=mechanism, template=template
        )
        if key_type == "field-enc":
            kcv = key.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)[:3]
        else:
            kcv = key.sign(bytes(32), mechanism=Mechanism.SHA256_HMAC)[:3]
        info = KeyInfo(
            label=check_label(label),
            key_type=key_type,
            alg=DATA_KEY_ALGS[key_type],
            kcv=kcv.hex().upper(),
            created_utc=utc_now(),
            version=version,
        )
        key[Attribute.ID] = msgspec.json.encode(info)
        return info

    async def generate_key(self, label: str, key_type: ServiceKeyType) -> KeyInfo:
        return await self._call(self._generate, label, key_type, 1)

    def _list(self) -> list[KeyInfo]:
        latest: dict[str, KeyInfo] = {}
        for info, _ in self._objects():
            latest[info.label] = info
        return [latest[label] for label in sorted(latest)]

    async def list_keys(self) -> list[KeyInfo]:
        return await self._call(self._list)

    def _rotate(self, label: str) -> KeyInfo:
        found = self._objects(check_label(label))
        if not found:
            raise KeyNotFoundError(f"no key labelled {label!r}")
        info = found[-1][0]
        if info.key_type in ("imk-ac", "pan-token"):
            raise RefusedError(f"{info.key_type} keys do not rotate (import a new label instead)")
        return self._generate(label, info.key_type, info.version + 1)

    async def rotate_key(self, label: str) -> KeyInfo:
        return await self._call(self._rotate, label)

    def _close(self) -> None:
        self._card_keys.clear()
        self._session.close()

    async def close(self) -> None:
        await self._call(self._close)
        self._executor.shutdown()
