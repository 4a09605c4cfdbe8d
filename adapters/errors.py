"""Errors of the adapters package (bank messages, file formats, signed HTTP)."""


class AdapterError(Exception):
    """Root of every error the adapters package raises."""


class SignatureError(AdapterError, PermissionError):
    """A signed request was refused: unknown or revoked key, bad signature, stale timestamp,
    or a replayed nonce. The message says which, never the key."""
