"""The ``soft`` key service backend: keys wrapped under a local master key file.

The store (:mod:`hsm.keystore`) is read when the service opens and again when a label is
not found and the file changed since (so keys imported by a ceremony while the server runs
are picked up). Unwrapped keys live only in this process's memory. ICC master keys derived
for cards are kept in a bounded LRU cache, with a ready ECB context so the session key of
a warm card costs one block encryption.

All work is CPU-bound and a few microseconds per item, so the async methods compute on
the event loop thread rather than paying for a thread hand-off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hsm import datakeys, keystore
from hsm.cache import LruCache
from hsm.ciphers import block_cipher
from hsm.derivation import derived_key
from hsm.errors import KeyExistsError, KeyNotFoundError, KeyStoreError, RefusedError
from hsm.metadata import describe_key, key_size
from hsm.metrics import ArqcCounters
from hsm.scheme import (
    Scheme,
    generate_arpc,
    master_key_input,
    scheme_named,
    session_key_input,
    verify_application_cryptogram,
)
from hsm.service import (
    ArqcRequest,
    ArqcResult,
    KeyInfo,
    KeyService,
    KeyType,
    check_batch,
    refuse_arpc,
)

CARD_KEYS_MAX = 65_536
_ECB = modes.ECB()


class _Key:
    """One label's metadata and unwrapped versions (index = version - 1)."""

    __slots__ = ("info", "versions", "scheme", "encryptor")

    def __init__(self, info: KeyInfo, versions: list[bytes]) -> None:
        self.info = info
        self.versions = versions
        self.scheme: Scheme | None = None
        if info.key_type == "imk-ac":
            try:
                self.scheme = scheme_named(info.scheme or "")
            except ValueError:
                raise KeyStoreError(f"key {info.label!r} names an unknown scheme") from None
        self.encryptor = (
            Cipher(block_cipher(info.alg, versions[-1]), _ECB).encryptor() if self.scheme else None
        )

    def __repr__(self) -> str:
        info = self.info
        return f"_Key(label={info.label!r}, type={info.key_type}, versions={len(self.versions)})"


class _CardKey:
    """A card's ICC master key and a ready ECB encryptor under it."""

    __slots__ = ("master_key", "encryptor")

    def __init__(self, scheme: Scheme, master_key: bytes) -> None:
        self.master_key = master_key
        self.encryptor = Cipher(block_cipher(scheme.alg, master_key), _ECB).encryptor()

    def __repr__(self) -> str:
        return "_CardKey(...)"


class SoftKeyService(KeyService):
    """:class:`~hsm.service.KeyService` over a local key store folder."""

    backend = "soft"

    def __init__(self, folder: Path, master_key: bytes, card_keys_max: int = CARD_KEYS_MAX) -> None:
        self._folder = folder
        self._master_key = master_key
        self._keys: dict[str, _Key] = {}
        self._store_mtime_ns = -1
        self._card_keys: LruCache[tuple[str, str, str], _CardKey] = LruCache(card_keys_max)
        self._arqc_counters = ArqcCounters(self.backend)
        self._reload()

    def __repr__(self) -> str:
        folder = str(self._folder)
        return (
            f"SoftKeyService(folder={folder!r}, keys={len(self._keys)}, cache={self._card_keys!r})"
        )

    @classmethod
    def init(cls, folder: Path) -> bool:
        """Create the store folder and master key file if missing; whether one was created."""
        return keystore.create_master_key(folder)

    @classmethod
    def open(cls, folder: Path, card_keys_max: int = CARD_KEYS_MAX) -> "SoftKeyService":
        """Open the store in ``folder``.

        Raises
        ------
        KeyStoreError
            No master key (run ``onecard keys init``), an unsafe one, or a damaged store.
        """
        return cls(folder, keystore.read_master_key(folder), card_keys_max)

    def _reload(self) -> None:
        mtime_ns = keystore.store_mtime_ns(self._folder)
        if mtime_ns == self._store_mtime_ns:
            return
        keys = {}
        for stored in keystore.read_store(self._folder):
            versions = [
                keystore.unwrap(self._master_key, stored.info, version, wrapped)
                for version, wrapped in enumerate(stored.wrapped, start=1)
            ]
            keys[stored.info.label] = _Key(stored.info, versions)
        self._keys = keys
        self._store_mtime_ns = mtime_ns
        self._card_keys.clear()

    def _key(self, label: str, key_type: KeyType) -> _Key:
        key = self._keys.get(label)
        if key is None:
            self._reload()
            key = self._keys.get(label)
        if key is None or key.info.key_type != key_type:
            raise KeyNotFoundError(f"no {key_type} key labelled {label!r}")
        return key

    # ARQC and ARPC

    def _card_key(self, imk: _Key, pan: str, psn: str) -> _CardKey:
        cache_key = (imk.info.label, pan, psn)
        card = self._card_keys.get(cache_key)
        if card is None:
            scheme = imk.scheme
            master_key = derived_key(
                scheme.alg, imk.encryptor.update(master_key_input(scheme, pan, psn))
            )
            card = _CardKey(scheme, master_key)
            self._card_keys.put(cache_key, card)
        return card

    def _ac_keys(self, request: ArqcRequest) -> tuple[Scheme, bytes, bytes]:
        """(scheme, ICC master key, session key); KeyNotFoundError or ValueError."""
        imk = self._key(request.key_label, "imk-ac")
        card = self._card_key(imk, request.pan, request.psn)
        data = session_key_input(imk.scheme, request.atc, request.un, request.r)
        if data is None:
            return imk.scheme, card.master_key, card.master_key
        return imk.scheme, card.master_key, derived_key(imk.scheme.alg, card.encryptor.update(data))

    def _verify(self, request: ArqcRequest) -> ArqcResult:
        try:
            scheme, _, session_key = self._ac_keys(request)
            verified = verify_application_cryptogram(
                scheme, session_key, request.transaction_data, request.arqc
            )
        except KeyNotFoundError:
            return ArqcResult.key_not_found
        except (ValueError, TypeError):
            return ArqcResult.input_invalid
        return ArqcResult.verified if verified else ArqcResult.arqc_mismatch

    async def verify_arqc_batch(self, requests: Sequence[ArqcRequest]) -> list[ArqcResult]:
        check_batch(requests)
        results = [self._verify(request) for request in requests]
        self._arqc_counters.count(results)
        return results

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
        scheme, master_key, session_key = self._ac_keys(request)
        chosen = session_key if key == "session_key" else master_key
        return generate_arpc(
            scheme,
            chosen,
            request.arqc,
            method,
            arc=arc,
            csu=csu,
            proprietary_auth_data=proprietary_auth_data,
        )

    # Data keys

    async def generate_mac(self, label: str, message: bytes) -> bytes:
        return datakeys.message_mac(self._key(label, "bank-mac").versions[-1], message)

    async def tokenize_pan(self, pan: str, label: str = "pan-token") -> str:
        return datakeys.pan_token(self._key(label, "pan-token").versions[-1], pan)

    async def generate_macs(self, label: str, messages: Sequence[bytes]) -> list[bytes]:
        return datakeys.message_macs(self._key(label, "bank-mac").versions[-1], messages)

    async def tokenize_pans(self, pans: Sequence[str], label: str = "pan-token") -> list[str]:
        return datakeys.pan_tokens(self._key(label, "pan-token").versions[-1], pans)

    async def encrypt_field(
        self, plaintext: bytes, associated_data: bytes, label: str = "field-enc"
    ) -> bytes:
        key = self._key(label, "field-enc")
        return datakeys.seal_field(key.versions[-1], len(key.versions), plaintext, associated_data)

    async def decrypt_field(
        self, sealed: bytes, associated_data: bytes, label: str = "field-enc"
    ) -> bytes:
        key = self._key(label, "field-enc")
        version = datakeys.field_version(sealed)
        if not 0 < version <= len(key.versions):
            raise RefusedError(
                f"sealed field names key version {version}, which {label!r} does not have"
            )
        plaintext = datakeys.open_field(key.versions[version - 1], sealed, associated_data)
        if plaintext is None:
            raise RefusedError("sealed field or its associated data was altered")
        return plaintext

    # Key management

    def _store(self, info: KeyInfo, versions: list[bytes], *, replace: bool) -> KeyInfo:
        """Write ``info`` and its key versions under the store lock.

        Raises
        ------
        KeyExistsError
            ``replace`` is false and the label is taken.
        """
        with keystore.store_lock(self._folder):
            self._write(info, versions, replace=replace)
        self._reload()
        return info

    def _write(self, info: KeyInfo, versions: list[bytes], *, replace: bool) -> None:
        # The caller holds the store lock.
        stored = keystore.read_store(self._folder)
        others = [s for s in stored if s.info.label != info.label]
        if not replace and len(others) != len(stored):
            raise KeyExistsError(f"a key labelled {info.label!r} already exists")
        wrapped = [
            keystore.wrap(self._master_key, info, number, key)
            for number, key in enumerate(versions, start=1)
        ]
        others.append(keystore.StoredKey(info=info, wrapped=wrapped))
        keystore.write_store(self._folder, sorted(others, key=lambda s: s.info.label))

    async def import_key(
        self, label: str, key_type: KeyType, alg: str, key: bytes, scheme: str | None = None
    ) -> KeyInfo:
        info = describe_key(label, key_type, alg, key, scheme)
        return self._store(info, [bytes(key)], replace=False)

    async def generate_key(self, label: str, key_type: KeyType) -> KeyInfo:
        if key_type == "imk-ac":
            raise RefusedError("imk-ac keys are imported from components, not generated")
        key = os.urandom(key_size(key_type))
        return self._store(describe_key(label, key_type, "", key, None), [key], replace=False)

    async def list_keys(self) -> list[KeyInfo]:
        self._reload()
        return [self._keys[label].info for label in sorted(self._keys)]

    async def rotate_key(self, label: str) -> KeyInfo:
        # The lock spans reading the current versions and writing the new list, so two
        # rotations at once cannot lose a version (and with it the fields sealed under it).
        with keystore.store_lock(self._folder):
            self._reload()
            current = self._keys.get(label)
            if current is None:
                raise KeyNotFoundError(f"no key labelled {label!r}")
            if current.info.key_type in ("imk-ac", "pan-token"):
                raise RefusedError(
                    f"{current.info.key_type} keys do not rotate (import a new label instead)"
                )
            key = os.urandom(key_size(current.info.key_type))
            version = len(current.versions) + 1
            info = describe_key(label, current.info.key_type, "", key, None, version=version)
            self._write(info, current.versions + [key], replace=True)
        self._reload()
        return info

    async def close(self) -> None:
        self._card_keys.clear()
        self._keys = {}
