"""The key service: the one interface the tap path, the bank adapters and the key
ceremony use, whatever holds the keys.

Backends: ``soft`` (:mod:`hsm.soft`, keys wrapped under a local master key file; the
default) and ``pkcs11`` (:mod:`hsm.token`, any PKCS#11 token; SoftHSM2 in tests), chosen
by ``ONECARD_HSM_BACKEND``:

| variable | default | meaning |
| --- | --- | --- |
| ``ONECARD_HSM_BACKEND`` | ``soft`` | ``soft`` or ``pkcs11`` |
| ``ONECARD_PKCS11_MODULE`` | ``/usr/lib/softhsm/libsofthsm2.so`` | the PKCS#11 library |
| ``ONECARD_PKCS11_TOKEN`` | ``onecard`` | token label |
| ``ONECARD_PKCS11_PIN`` | unset | user PIN (required for ``pkcs11``) |

Key types: ``imk-ac`` (issuer master key for application cryptograms, 16 bytes, with the
scheme its cards run), ``bank-mac`` (HMAC-SHA256 of bank messages), ``pan-token``
(HMAC-SHA256 PAN tokens) and ``field-enc`` (AES-256-GCM personal data at rest); the data
keys are 32 bytes and generated inside the service.
"""

from __future__ import annotations

import abc
import hmac
import os
from enum import IntEnum
from typing import Literal, Mapping, Sequence

import msgspec

from engine.config import Config
from hsm.errors import HsmValueError, RefusedError

KeyType = Literal["imk-ac", "bank-mac", "pan-token", "field-enc"]
KEY_TYPES: tuple[KeyType, ...] = ("imk-ac", "bank-mac", "pan-token", "field-enc")
DATA_KEY_ALGS = {"bank-mac": "HMAC-SHA256", "pan-token": "HMAC-SHA256", "field-enc": "AES-256-GCM"}
IMK_ALGS = {"3des": "3DES", "aes": "AES-128", "sm4": "SM4"}
LABEL_SIZE_MAX = 64
BATCH_SIZE_MAX = 4096
PKCS11_MODULE_DEFAULT = "/usr/lib/softhsm/libsofthsm2.so"
assert set(DATA_KEY_ALGS) | {"imk-ac"} == set(KEY_TYPES)


class ArqcRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ARQC to verify; the scheme comes from the ``imk-ac`` key's metadata.

    Attributes
    ----------
    key_label : str
        Label of the issuer's ``imk-ac`` key.
    pan : str
        8 to 19 digits (tag 5A).
    psn : str
        2 digits (tag 5F34; ``"00"`` when absent).
    atc : bytes
        2 bytes (tag 9F36).
    un : bytes
        4 bytes (tag 9F37); ``b""`` allowed unless the scheme is ``mastercard``.
    transaction_data : bytes
        The exact bytes the card MACed, at most 1024.
    arqc : bytes
        8 bytes (tag 9F26).
    r : bytes | None
        Explicit diversification value, only for ``common_r`` schemes.
    """

    key_label: str
    pan: str
    psn: str
    atc: bytes
    un: bytes
    transaction_data: bytes
    arqc: bytes
    r: bytes | None = None

    def __repr__(self) -> str:
        # The PAN is personal data: only its last four digits are shown.
        pan = f"…{self.pan[-4:]}"
        return f"ArqcRequest(key_label={self.key_label!r}, pan={pan!r}, atc={self.atc.hex()})"


class ArqcResult(IntEnum):
    """Outcome of one ARQC, in priority order: the first that applies is returned.

    None is transient: a failure of the backend itself raises :class:`HsmError` for the
    whole call instead.
    """

    verified = 0
    key_not_found = 1  # no imk-ac key with that label
    input_invalid = 2  # a field has a wrong length or format (see ArqcRequest)
    arqc_mismatch = 3  # well-formed, but the cryptogram is not the card's


class KeyInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What may be shown about a key: never its value.

    ``kcv`` is the key check value in hex, 3 bytes: :func:`hsm.ciphers.key_check_value`
    for ``imk-ac``, AES-256 of a zero block for ``field-enc``, HMAC-SHA256(key, 32 zero
    bytes) for ``bank-mac`` and ``pan-token``. ``created_utc`` is when this version was made.
    """

    label: str
    key_type: KeyType
    alg: str
    kcv: str
    created_utc: str
    version: int = 1
    scheme: str | None = None


class KeyService(abc.ABC):
    """The async key service. Every method may raise :class:`~hsm.errors.HsmError` (backend failure,
    unknown key); bad inputs raise a ``ValueError`` (an :class:`HsmError` too where the
    service itself refuses)."""

    backend: str

    async def verify_arqc(self, request: ArqcRequest) -> ArqcResult:
        """Verify one ARQC (see :meth:`verify_arqc_batch`)."""
        return (await self.verify_arqc_batch([request]))[0]

    @abc.abstractmethod
    async def verify_arqc_batch(self, requests: Sequence[ArqcRequest]) -> list[ArqcResult]:
        """Verify up to 4096 ARQCs; one :class:`ArqcResult` per request, in order.

        Comparisons are constant-time. EMV 4.4 Book 2, A1.2-A1.4.

        Raises
        ------
        ValueError
            More than 4096 requests.
        HsmError
            The backend failed (nothing is verified; transient).
        """

    @abc.abstractmethod
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
        """The ARPC (8 bytes by method 1 with a 2-byte ``arc``, 4 by method 2 with a 4-byte
        ``csu`` and 0-8 bytes of proprietary data) for a request whose ARQC verifies.

        Raises
        ------
        RefusedError
            The ARQC did not verify: no ARPC is ever produced for it.
        ValueError
            A wrong ``arc``/``csu``/data length.
        """

    @abc.abstractmethod
    async def generate_mac(self, label: str, message: bytes) -> bytes:
        """HMAC-SHA256 (32 bytes) of a bank message under the ``bank-mac`` key ``label``."""

    async def generate_macs(self, label: str, messages: Sequence[bytes]) -> list[bytes]:
        """:meth:`generate_mac` of each message, in order: one call for a batch (a backend
        that can do better than one call per message overrides it)."""
        return [await self.generate_mac(label, message) for message in messages]

    async def verify_mac(self, label: str, message: bytes, mac: bytes) -> bool:
        """Whether ``mac`` is the MAC of ``message`` (constant-time comparison)."""
        return hmac.compare_digest(await self.generate_mac(label, message), mac)

    @abc.abstractmethod
    async def tokenize_pan(self, pan: str, label: str = "pan-token") -> str:
        """A stable, irreversible 32-hex-digit token of ``pan`` (HMAC-SHA256, keyed)."""

    async def tokenize_pans(self, pans: Sequence[str], label: str = "pan-token") -> list[str]:
        """:meth:`tokenize_pan` of each PAN, in order, in one call (``ValueError`` if one of
        them is not 8 to 19 digits; the message does not repeat it)."""
        return [await self.tokenize_pan(pan, label) for pan in pans]

    @abc.abstractmethod
    async def encrypt_field(
        self, plaintext: bytes, associated_data: bytes, label: str = "field-enc"
    ) -> bytes:
        """Seal personal data for storage (AES-256-GCM, layout in :mod:`hsm.datakeys`);
        ``associated_data`` binds it to its place (e.g. ``b"cardholder.name:42"``)."""

    @abc.abstractmethod
    async def decrypt_field(
        self, sealed: bytes, associated_data: bytes, label: str = "field-enc"
    ) -> bytes:
        """Open a sealed field.

        Raises
        ------
        RefusedError
            The ciphertext or its associated data was altered.
        """

    @abc.abstractmethod
    async def import_key(
        self, label: str, key_type: KeyType, alg: str, key: bytes, scheme: str | None = None
    ) -> KeyInfo:
        """Store a key assembled by the ceremony (``imk-ac``: ``alg`` 3des/aes/sm4 and a
        ``scheme`` of :data:`hsm.scheme.SCHEMES`).

        Raises
        ------
        KeyExistsError
            ``label`` is taken.
        """

    @abc.abstractmethod
    async def generate_key(self, label: str, key_type: KeyType) -> KeyInfo:
        """Create a random data key (``bank-mac``, ``pan-token``, ``field-enc``) in the service."""

    @abc.abstractmethod
    async def list_keys(self) -> list[KeyInfo]:
        """Every key's metadata, by label."""

    @abc.abstractmethod
    async def rotate_key(self, label: str) -> KeyInfo:
        """Give a data key a new random version; older versions still open old fields.

        Raises
        ------
        RefusedError
            ``imk-ac`` keys (a new IMK is a new label imported by a ceremony) and
            ``pan-token`` keys (tokens must stay stable) do not rotate.
        """

    async def close(self) -> None:
        """Release the backend (sessions, caches)."""


def check_label(label: str) -> str:
    """Return ``label`` if it is 1 to 64 characters of letters, digits, ``-``, ``_``, ``.``.

    >>> check_label("imk-ac.bank1")
    'imk-ac.bank1'
    """
    if not (
        isinstance(label, str)
        and 0 < len(label) <= LABEL_SIZE_MAX
        and label.isascii()
        and all(character.isalnum() or character in "-_." for character in label)
    ):
        raise HsmValueError(f"label must be 1 to {LABEL_SIZE_MAX} of A-Z a-z 0-9 - _ .")
    return label


def check_batch(requests: Sequence[ArqcRequest]) -> None:
    """Refuse a batch over :data:`BATCH_SIZE_MAX` requests."""
    if len(requests) > BATCH_SIZE_MAX:
        raise HsmValueError(f"a batch holds at most {BATCH_SIZE_MAX} requests, got {len(requests)}")


def refuse_arpc(result: ArqcResult) -> None:
    """Raise :class:`RefusedError` unless ``result`` is ``verified``."""
    if result != ArqcResult.verified:
        raise RefusedError(f"no ARPC for an ARQC that did not verify ({result.name})")


def open_key_service(
    config: Config, backend: str | None = None, environ: Mapping[str, str] | None = None
) -> KeyService:
    """The configured key service: ``backend`` or ``ONECARD_HSM_BACKEND`` (default ``soft``).

    Raises
    ------
    KeyStoreError
        The soft key store is unsafe (master key file readable by group or others) or
        damaged.
    HsmError
        ``pkcs11``: no PIN set, the module cannot load, or the token is not found.
    """
    env = os.environ if environ is None else environ
    chosen = backend or env.get("ONECARD_HSM_BACKEND", "").strip() or "soft"
    if chosen == "soft":
        from hsm.soft import SoftKeyService

        return SoftKeyService.open(config.home / "keys")
    if chosen == "pkcs11":
        from hsm.token import TokenKeyService

        pin = env.get("ONECARD_PKCS11_PIN")
        if not pin:
            raise HsmValueError("ONECARD_PKCS11_PIN must be set for the pkcs11 backend")
        return TokenKeyService.open(
            env.get("ONECARD_PKCS11_MODULE") or PKCS11_MODULE_DEFAULT,
            env.get("ONECARD_PKCS11_TOKEN") or "onecard",
            pin,
        )
    raise HsmValueError(f"ONECARD_HSM_BACKEND must be soft or pkcs11, got {chosen!r}")
