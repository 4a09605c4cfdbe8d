"""Errors of the adapters package (bank messages, file formats, signed HTTP)."""


class AdapterError(Exception):
    """Root of every error the adapters package raises."""


class SignatureError(AdapterError, PermissionError):
    """A signed request was refused: unknown or revoked key, bad signature, stale timestamp,
    or a replayed nonce. The message says which, never the key."""


class FileFormatError(AdapterError, ValueError):
    """An input file (batch, cardholder list) cannot be read as the declared format: wrong
    encoding, no header row, a required column missing, totals that do not parse. The message
    names the file position or column; the whole file is refused."""


class FileEncodingError(FileFormatError):
    """The file's bytes are not valid text in the detected or declared encoding. Nothing is
    replaced by U+FFFD: the file is refused with the byte offset of the first bad byte."""
