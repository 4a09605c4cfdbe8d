"""Batch lines kept for execution and reports: spooled while validating, stored at submit.

Validation streams a file in chunks (:data:`engine.disbursement.store.CHUNK_LINES`); the
batch row can only be written at the end (its content hash covers every line), so
:class:`LineSpool` writes each chunk to an anonymous temporary file and
:meth:`LineSpool.frames` replays them into the submit transaction. Memory stays one chunk.

Per line the database keeps what execution needs (result, amount in fen, the card's token,
issuing bank and registered name); the line's own fields as the department wrote them
(which carry identity and card numbers) are sealed by the key service, one sealed blob per
chunk, bound to the batch's content hash and the chunk's first line, and opened again only
to write the pacs.008 creditor account and the result file.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator, Sequence

import msgspec

from engine.disbursement.results import LineResult
from engine.disbursement.validation import LineOutcome
from hsm.datakeys import FIELD_SIZE_MAX
from hsm.service import KeyService

FIELDS_KEY = "field-enc"
FRAME_HEADER = struct.Struct(">I")
SEALED_PIECE_BYTES_MAX = FIELD_SIZE_MAX

assert SEALED_PIECE_BYTES_MAX > 0

# (line, result, amount_minor | None, pan_token | None, bank_code | None, name | None)
LineRow = tuple[int, int, int | None, str | None, str | None, str | None]
# (sequence, name, id_number, card_number, amount, item, remark), as written in the file.
LineFields = tuple[str, str, str, str, str, str, str]


class Frame(msgspec.Struct, frozen=True, array_like=True):
    """One spooled chunk: its first line number, the rows and the clear fields."""

    first_line: int
    rows: list[LineRow]
    fields: list[LineFields]


_ENCODER = msgspec.msgpack.Encoder()
_FRAME_DECODER = msgspec.msgpack.Decoder(Frame)
_FIELDS_DECODER = msgspec.msgpack.Decoder(list[LineFields])
_PIECES_DECODER = msgspec.msgpack.Decoder(list[bytes])


def line_row(outcome: LineOutcome) -> LineRow:
    """The stored row of one validated line (card data only for accepted lines)."""
    if outcome.result is not LineResult.ok:
        return (outcome.line.line, int(outcome.result), outcome.amount_minor, None, None, None)
    holder = outcome.cardholder
    assert holder is not None and outcome.amount_minor is not None and outcome.amount_minor > 0
    return (outcome.line.line, 0, outcome.amount_minor, holder.pan_token, holder.bank_code, holder.name)


def line_fields(outcome: LineOutcome) -> LineFields:
    """The line's own fields as written, in result-file column order."""
    line = outcome.line
    return (line.sequence, line.name, line.id_number, line.card_number, line.amount, line.item, line.remark)


def fields_context(content_sha256: str, first_line: int, piece: int) -> bytes:
    """Associated data binding a sealed piece to its batch content, chunk and place.

    >>> fields_context("ab", 1, 0)
    b'disbursement_line_fields:ab:1:0'
    """
    return f"disbursement_line_fields:{content_sha256}:{first_line}:{piece}".encode("ascii")


async def seal_fields(keys: KeyService, content_sha256: str, first_line: int, fields: Sequence[LineFields]) -> bytes:
    """One chunk's fields sealed by the key service (AES-256-GCM).

    The key service seals at most ``hsm.datakeys.FIELD_SIZE_MAX`` bytes at a time, so the
    encoded chunk is cut into pieces of :data:`SEALED_PIECE_BYTES_MAX`, each sealed with
    its index in the associated data (no piece can be moved or dropped unnoticed), and the
    sealed pieces are stored together as one msgpack list.
    """
    plain = _ENCODER.encode(list(fields))
    pieces = [await keys.encrypt_field(plain[start:start + SEALED_PIECE_BYTES_MAX],
                                       fields_context(content_sha256, first_line, index), FIELDS_KEY)
              for index, start in enumerate(range(0, len(plain), SEALED_PIECE_BYTES_MAX))]
    return _ENCODER.encode(pieces)


async def open_fields(keys: KeyService, content_sha256: str, first_line: int, sealed: bytes) -> list[LineFields]:
    """The fields of one sealed chunk (``RefusedError`` from the key service if altered)."""
    pieces = _PIECES_DECODER.decode(sealed)
    plain = b"".join([await keys.decrypt_field(piece, fields_context(content_sha256, first_line, index), FIELDS_KEY)
                      for index, piece in enumerate(pieces)])
    return _FIELDS_DECODER.decode(plain)


class LineSpool:
    """Validated lines written chunk by chunk to a temporary file (see the module docstring)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self.chunks = 0

    def add_chunk(self, outcomes: Sequence[LineOutcome]) -> None:
        """Spool one chunk of outcomes (in file order, first line first)."""
        assert outcomes, "a chunk has at least one line"
        frame = _ENCODER.encode(Frame(outcomes[0].line.line, [line_row(o) for o in outcomes],
                                      [line_fields(o) for o in outcomes]))
        self._file.write(FRAME_HEADER.pack(len(frame)) + frame)
        self.chunks += 1

    def frames(self) -> Iterator[Frame]:
        """The spooled chunks, in order (read back from the start)."""
        self._file.seek(0)
        for _ in range(self.chunks):
            (size,) = FRAME_HEADER.unpack(self._file.read(FRAME_HEADER.size))
            yield _FRAME_DECODER.decode(self._file.read(size))

    def close(self) -> None:
        """Delete the temporary file."""
        self._file.close()
