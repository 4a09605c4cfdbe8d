"""Errors of the key service. Messages name keys by label and never carry key material."""

from __future__ import annotations


class HsmError(Exception):
    """Root of every error the key service raises (shown to CLI users)."""


class HsmValueError(HsmError, ValueError):
    """An argument of a key service call is malformed; the message names it."""


class KeyNotFoundError(HsmError, LookupError):
    """No key with the requested label exists in the key store."""


class KeyExistsError(HsmError, ValueError):
    """A key with that label already exists (import refuses to overwrite)."""


class KeyStoreError(HsmError, OSError):
    """The key store or its master key file is missing, unsafe or damaged."""


class CeremonyError(HsmError, ValueError):
    """Key components or check values of a key ceremony do not agree."""


class UnsupportedError(HsmError, NotImplementedError):
    """The backend cannot run this scheme or operation (e.g. SM4 in SoftHSM2)."""


class RefusedError(HsmError, ValueError):
    """The request is refused (e.g. an ARPC for an ARQC that did not verify)."""


class TokenError(HsmError, OSError):
    """The PKCS#11 token failed or refused an operation (transient unless it repeats)."""
