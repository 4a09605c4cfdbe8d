"""Step 3: issuer master keys through the key ceremony.

Each partner bank's ``imk-ac`` key is split into two random components held by two
custodians; the key service assembles it from the components, checking each component's
KCV and the key's (:func:`hsm.ceremony.combine_components`), exactly as
``onecard keys import --component - --component - --kcv ...`` does. The key material is
the gate simulator's simulation key of the bank's scheme (a demo key, never a programme
key). The data keys (PAN tokens, sealed fields, identity hashes) are generated.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hsm.ceremony import combine_components
from hsm.ciphers import key_check_value
from hsm.scheme import SCHEMES
from hsm.service import KeyService

KCV_BYTES = 3
DATA_KEYS = (("pan-token", "pan-token"), ("field-enc", "field-enc"), ("cardholder-id-hash", "bank-mac"))
_ALG_OF_CIPHER = {"3DES": "3des", "AES-128": "aes", "SM4": "sm4"}


@dataclass(frozen=True)
class CeremonyRecord:
    """What the ceremony shows: the label, scheme and KCV lines (never the key)."""

    label: str
    scheme: str
    lines: tuple[str, ...]


async def import_issuer_key(key_service: KeyService, label: str, scheme: str, key: bytes) -> CeremonyRecord:
    """Split ``key`` (16 bytes) into two components and import it through the ceremony.

    Raises
    ------
    hsm.errors.CeremonyError
        A KCV does not match (cannot happen for components made here).
    hsm.errors.KeyExistsError
        ``label`` is taken.
    """
    cipher = SCHEMES[scheme].alg
    first = secrets.token_bytes(len(key))
    second = bytes(a ^ b for a, b in zip(key, first))
    components = [first, second]
    component_kcvs = [key_check_value(cipher, part)[:KCV_BYTES] for part in components]
    combined, lines = combine_components(cipher, components, component_kcvs,
                                         key_check_value(cipher, key)[:KCV_BYTES])
    await key_service.import_key(label, "imk-ac", _ALG_OF_CIPHER[cipher], combined, scheme)
    return CeremonyRecord(label, scheme, tuple(lines))


async def generate_data_keys(key_service: KeyService) -> list[str]:
    """Generate the data keys the engine needs; return their labels."""
    for label, key_type in DATA_KEYS:
        await key_service.generate_key(label, key_type)
    return [label for label, _ in DATA_KEYS]
