"""Text encodings of department files: detect or check UTF-8, UTF-8 with BOM, GBK, GB18030.

Detection reads the whole file once in chunks (constant memory) with strict decoders:
a byte-order mark selects UTF-8; otherwise the file is UTF-8 if every byte decodes as
UTF-8, else GB18030 if every byte decodes as GB18030, else it is refused. UTF-8 is tried
first because GB18030 decodes almost any UTF-8 Chinese text *without* an error, into the
wrong characters (mojibake); the reverse is not true, as GBK byte pairs are rarely valid
UTF-8. GBK is a subset of GB18030, so GBK files are read with the GB18030 decoder, which
also keeps characters outside GBK (``𠀚``) exactly. Nothing is ever replaced by U+FFFD.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import BinaryIO

from adapters.errors import FileEncodingError

CHUNK_BYTES = 1 << 20
UTF8_BOM = codecs.BOM_UTF8

# Declared names the engine accepts, mapped to the decoder used. "utf-8" also accepts a
# BOM, since Excel writes one and the user cannot see it.
DECLARED_ENCODINGS = {
    "utf-8": "utf-8-sig",
    "utf-8-sig": "utf-8-sig",
    "gbk": "gbk",
    "gb18030": "gb18030",
}

assert CHUNK_BYTES >= 4, "a chunk must hold at least one whole multi-byte character"


def canonical_encoding(name: str) -> str:
    """The decoder for a declared encoding name (any spelling Python knows: ``UTF8``, ``cp936``).

    Raises
    ------
    FileEncodingError
        The name is unknown or not one of UTF-8, GBK, GB18030.

    >>> canonical_encoding("UTF8"), canonical_encoding("GB18030"), canonical_encoding("cp936")
    ('utf-8-sig', 'gb18030', 'gbk')
    """
    try:
        python_name = codecs.lookup(name).name
    except LookupError:
        raise FileEncodingError(f"unknown encoding {name!r}; use utf-8, gbk or gb18030") from None
    if python_name not in DECLARED_ENCODINGS:
        raise FileEncodingError(f"encoding {name!r} is not supported; use utf-8, gbk or gb18030")
    return DECLARED_ENCODINGS[python_name]


def first_bad_byte(stream: BinaryIO, encoding: str) -> int | None:
    """Byte offset of the first byte ``encoding`` cannot decode in ``stream``, or ``None``.

    Reads from the current position to the end in ``CHUNK_BYTES`` chunks; an incomplete
    character at the end of the file counts as bad.
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        final = not chunk
        # The error's start is relative to the bytes the decoder still buffers plus this chunk.
        buffered = len(decoder.getstate()[0])
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError as error:
            return offset - buffered + error.start
        if final:
            return None
        offset += len(chunk)


def detect_encoding(path: Path) -> str:
    """The decoder for the file at ``path``: ``utf-8-sig``, ``utf-8`` or ``gb18030``.

    Raises
    ------
    FileEncodingError
        The file is neither valid UTF-8 nor valid GB18030; the message gives the offset
        of the first byte that is not UTF-8.
    """
    with open(path, "rb") as stream:
        if stream.read(len(UTF8_BOM)) == UTF8_BOM:
            bad_utf8 = first_bad_byte(stream, "utf-8")
            if bad_utf8 is not None:
                raise FileEncodingError(
                    f"{path.name}: starts with a UTF-8 byte-order mark but byte {bad_utf8 + 3} "
                    "is not valid UTF-8"
                )
            return "utf-8-sig"
        stream.seek(0)
        bad_utf8 = first_bad_byte(stream, "utf-8")
        if bad_utf8 is None:
            return "utf-8"
        stream.seek(0)
        if first_bad_byte(stream, "gb18030") is None:
            return "gb18030"
    raise FileEncodingError(
        f"{path.name}: not valid UTF-8 (byte {bad_utf8}) nor GBK/GB18030; "
        "save it as UTF-8 or declare its encoding"
    )


def check_declared(path: Path, declared: str) -> str:
    """Check that the whole file decodes as ``declared``; return its decoder name.

    Raises
    ------
    FileEncodingError
        The name is not supported, or a byte does not decode (offset given).
    """
    encoding = canonical_encoding(declared)
    with open(path, "rb") as stream:
        bad = first_bad_byte(stream, encoding)
    if bad is not None:
        raise FileEncodingError(f"{path.name}: byte {bad} is not valid {declared}")
    return encoding


def resolve_encoding(path: Path, declared: str | None = None) -> str:
    """The decoder to read ``path`` with: ``declared`` after checking it, else detected."""
    return detect_encoding(path) if declared is None else check_declared(path, declared)
