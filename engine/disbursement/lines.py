"""Batch lines kept for execution and reports: spooled while validating, stored at submit.

Validation streams a file in chunks (:data:`engine.disbursement.store.CHUNK_LINES`); the
batch row can only be written at the end (its content hash covers every line), so
:class:`LineSpool` writes each chunk to an anonymous temporary file and
:meth:`LineSpool.rows` and :meth:`LineSpool.fields` replay them into the submit
transaction. Memory stays one chunk.

Per line the database keeps what execution needs (result, amount in fen, the card's token,
issuing bank and registered name); the line's own fields as the department wrote them
(which carry identity and card numbers) are sealed by the key service, one sealed blob per
chunk, bound to the batch's content hash and the chunk's first line, and opened again only
to write the pacs.008 creditor account and the result file.
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence

import msgspec

from adapters.batch_file import BatchLine
from engine.disbursement.results import LineResult
from engine.disbursement.validation import LineOutcome
from hsm.datakeys import FIELD_SIZE_MAX
from hsm.service import KeyService

FIELDS_KEY = "field-enc"
# A spooled chunk: its first line number and the byte sizes of its rows and its fields.
FRAME_HEADER = struct.Struct(">III")
SEALED_PIECE_BYTES_MAX = FIELD_SIZE_MAX

assert SEALED_PIECE_BYTES_MAX > 0

# The columns of disbursement_lines a spooled row fills (copy_rows), in its order.
LINE_COLUMNS = ("batch_id", "line", "result", "amount_minor", "pan_token", "bank_code", "name")
# (sequence, name, id_number, card_number, amount, item, remark), as written in the file.
LineFields = tuple[str, str, str, str, str, str, str]


_QUOTE = '"'
_QUOTES = '""'
_ENCODER = msgspec.msgpack.Encoder()
_FIELDS_DECODER = msgspec.msgpack.Decoder(list[LineFields])
_PIECES_DECODER = msgspec.msgpack.Decoder(list[bytes])


def copy_rows(batch_id: int, outcomes: Sequence[LineOutcome]) -> bytes:
    """The stored rows of validated lines (:data:`LINE_COLUMNS`: batch id, line, result,
    amount in fen, then the card's token, issuing bank and registered name for accepted
    lines only) in PostgreSQL's COPY CSV format, UTF-8, one ``\\n``-ended row per outcome.

    Texts are always quoted (a quote doubled), so a name keeps its commas, quotes and line
    breaks; ``None`` is an unquoted empty value, which COPY reads as NULL. Built as text
    directly: a third of ``csv.writer`` over row tuples (1,000,000 rows a batch).

    >>> from engine.disbursement.registry import CardholderRecord, CardStatus
    >>> holder = CardholderRecord("510121195803142150", '张"三', CardStatus.active, "ab" * 16, "8396", "ICBC")
    >>> line = BatchLine(1, "510121195803142150", '张"三', "6222026465816998396", "3.00")
    >>> copy_rows(7, [LineOutcome(line, LineResult.ok, "", line.id_number, 300, holder),
    ...               LineOutcome(line, LineResult.amount_precision, "", line.id_number, None, holder)]).decode()
    '7,1,0,300,"abababababababababababababababab","ICBC","张""三"\\n7,1,10,,,,\\n'
    """
    ok = LineResult.ok
    rows = []
    for outcome in outcomes:
        if outcome.result is ok:
            holder = outcome.cardholder
            assert holder is not None
            rows.append(f'{batch_id},{outcome.line.line},0,{outcome.amount_minor},'
                        f'"{holder.pan_token.replace(_QUOTE, _QUOTES)}","{holder.bank_code.replace(_QUOTE, _QUOTES)}",'
                        f'"{holder.name.replace(_QUOTE, _QUOTES)}"\n')
        else:
            amount_minor = outcome.amount_minor
            rows.append(f"{batch_id},{outcome.line.line},{outcome.result.value},"
                        f"{'' if amount_minor is None else amount_minor},,,\n")
    return "".join(rows).encode()


def encode_fields(lines: Sequence[BatchLine]) -> bytes:
    """The msgpack list of the lines' :data:`LineFields` (their own fields as written, in
    result-file column order): a spooled chunk's fields, as :func:`seal_fields` seals them
    (computed ahead by :mod:`engine.disbursement.reading`).

    >>> msgspec.msgpack.decode(encode_fields([BatchLine(1, "X", "张三", "6", "1", "I", "R", "S")]))
    [['S', '张三', 'X', '6', '1', 'I', 'R']]
    """
    return _ENCODER.encode([(line.sequence, line.name, line.id_number, line.card_number, line.amount, line.item,
                             line.remark) for line in lines])


def fields_context(content_sha256: str, first_line: int, piece: int) -> bytes:
    """Associated data binding a sealed piece to its batch content, chunk and place.

    >>> fields_context("ab", 1, 0)
    b'disbursement_line_fields:ab:1:0'
    """
    return f"disbursement_line_fields:{content_sha256}:{first_line}:{piece}".encode("ascii")


async def seal_fields(keys: KeyService, content_sha256: str, first_line: int, plain: bytes) -> bytes:
    """One chunk's fields (``plain``: the msgpack list of its :data:`LineFields`, as
    :meth:`LineSpool.fields` gives it) sealed by the key service (AES-256-GCM).

    The key service seals at most ``hsm.datakeys.FIELD_SIZE_MAX`` bytes at a time, so the
    encoded chunk is cut into pieces of :data:`SEALED_PIECE_BYTES_MAX`, each sealed with
    its index in the associated data (no piece can be moved or dropped unnoticed), and the
    sealed pieces are stored together as one msgpack list.
    """
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
    """Validated lines written chunk by chunk to a temporary file (see the module docstring).

    Each chunk is one :data:`FRAME_HEADER` and two blobs: its rows in PostgreSQL's COPY
    CSV format (:data:`LINE_COLUMNS`; ``None`` is written as an unquoted empty value,
    which COPY reads as NULL), ready to be streamed to the server as they are, and the
    msgpack list of its fields, ready to be sealed. The rows carry the batch id, so the
    id is reserved (:meth:`reserve`) before the first chunk.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self.batch_id: int | None = None
        self.chunks = 0
        self.lines = 0

    def reserve(self, batch_id: int) -> None:
        """Take the id the batch will be stored under (once, before any chunk)."""
        assert self.batch_id is None and self.chunks == 0, "a spool holds one batch"
        self.batch_id = batch_id

    def add_chunk(self, outcomes: Sequence[LineOutcome], fields: bytes | None = None) -> None:
        """Spool one chunk of outcomes (in file order, first line first); ``fields`` is
        :func:`encode_fields` of their lines if it was computed ahead."""
        assert self.batch_id is not None, "the batch id is reserved first"
        assert outcomes, "a chunk has at least one line"
        assert outcomes[0].line.line == self.lines + 1, "chunks come in file order"
        rows = copy_rows(self.batch_id, outcomes)
        if fields is None:
            fields = encode_fields([o.line for o in outcomes])
        self._file.write(FRAME_HEADER.pack(outcomes[0].line.line, len(rows), len(fields)) + rows + fields)
        self.chunks += 1
        self.lines += len(outcomes)

    async def rows(self) -> AsyncIterator[bytes]:
        """The spooled rows as COPY CSV data, chunk by chunk, in line order (what
        ``asyncpg.Connection.copy_to_table`` takes as its source)."""
        for _first_line, rows, _fields in self._frames(fields=False):
            yield rows

    def fields(self) -> Iterator[tuple[int, bytes]]:
        """(first line, msgpack list of :data:`LineFields`) of each chunk, in order."""
        for first_line, _rows, fields in self._frames(rows=False):
            yield first_line, fields

    def _frames(self, *, rows: bool = True, fields: bool = True) -> Iterator[tuple[int, bytes, bytes]]:
        """(first line, rows blob, fields blob) of each chunk; a blob not asked for is b""."""
        self._file.seek(0)
        for _ in range(self.chunks):
            first_line, rows_size, fields_size = FRAME_HEADER.unpack(self._file.read(FRAME_HEADER.size))
            rows_blob = self._file.read(rows_size) if rows else self._skip(rows_size)
            fields_blob = self._file.read(fields_size) if fields else self._skip(fields_size)
            yield first_line, rows_blob, fields_blob

    def _skip(self, size: int) -> bytes:
        self._file.seek(size, io.SEEK_CUR)
        return b""

    def close(self) -> None:
        """Delete the temporary file."""
        self._file.close()
