"""Batch lines in chunks with their :class:`~engine.disbursement.validation.PreparedLine`,
read and prepared in this process or, for a large CSV or XLSX file, in a child process.

Reading a file (decoding, CSV parsing, header mapping) and preparing its lines
(normalising, checking identity numbers, parsing amounts, the content hash's bytes, the
msgpack of the fields the spool seals) is about two fifths of submitting a batch's Python
time (9.4 of 23.9 us per line in ``benchmarks/batch.py``, shared machine at load 3-4) and
needs nothing but the line itself. For a :class:`~adapters.batch_file.TabularBatchFile` of
:data:`READ_AHEAD_BYTES_MIN` or more, :func:`chunk_reader` hands that work to a spawned
child, which sends each chunk (msgpack) over a pipe while this process looks up and
decides the previous chunk: the second core does it. The pipe holds about one chunk, so
memory stays a few chunks on both sides; the lines, their order, the declared totals and
the file errors (:class:`~adapters.errors.FileFormatError`, with the child's message,
after the whole chunks before it) are those of reading in this process. A child that ends
without its result (killed, out of memory) raises
:class:`~engine.errors.ReaderProcessError`. The child holds no key.

Starting a child costs a few tenths of a second, hence the size threshold; the consumer
waits for each chunk on the pipe (blocking, as reading the file in process blocks), so an
event loop pauses for the child's start once.
"""

from __future__ import annotations

import datetime
import itertools
import multiprocessing
import signal
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

import msgspec

from adapters import errors
from adapters.batch_file import BatchLine, BatchSource, TabularBatchFile
from adapters.columns import DeclaredTotals
from engine.disbursement.lines import encode_fields
from engine.disbursement.validation import PreparedLine, prepare_chunk
from engine.errors import ReaderProcessError

READ_AHEAD_BYTES_MIN = 16 * 1024 * 1024
CHILD_EXIT_S_MAX = 10.0

assert READ_AHEAD_BYTES_MIN > 0 and CHILD_EXIT_S_MAX > 0

# A chunk's lines, their prepared lines, the msgpack of their fields (encode_fields) and
# their part of the content hash (both of prepare_chunk).
Chunk = tuple[list[BatchLine], list[PreparedLine], bytes, bytes]


class ChunkReader(Protocol):
    """Chunks of a batch file's lines with their prepared lines, then its declared totals."""

    def chunks(self) -> Iterator[Chunk]:
        """Each chunk (of the reader's ``chunk_lines`` lines, the last one shorter) in file
        order; iterate once. Raises what the source raises while reading (``AdapterError``)."""
        ...

    def declared_totals(self) -> list[DeclaredTotals]:
        """The source's declared totals (complete after :meth:`chunks`)."""
        ...


def chunk_reader(source: BatchSource, today: datetime.date, chunk_lines: int) -> ChunkReader:
    """A reader of ``source`` in chunks of ``chunk_lines`` (> 0), birth dates after
    ``today`` refused: in a child process for a CSV or XLSX file of at least
    :data:`READ_AHEAD_BYTES_MIN` bytes (unless this process is a daemonic one, which may
    not start children), else in this process."""
    assert chunk_lines > 0
    if (isinstance(source, TabularBatchFile) and source.path.stat().st_size >= READ_AHEAD_BYTES_MIN
            and not multiprocessing.current_process().daemon):
        return ReadAheadReader(source.path, source.encoding, today, chunk_lines)
    return InProcessReader(source, today, chunk_lines)


class InProcessReader:
    """:class:`ChunkReader` reading and preparing in this process."""

    def __init__(self, source: BatchSource, today: datetime.date, chunk_lines: int) -> None:
        self._source = source
        self._today = today
        self._chunk_lines = chunk_lines

    def chunks(self) -> Iterator[Chunk]:
        lines = self._source.lines()
        while chunk := list(itertools.islice(lines, self._chunk_lines)):
            prepared, content = prepare_chunk(chunk, self._today)
            yield chunk, prepared, encode_fields(chunk), content

    def declared_totals(self) -> list[DeclaredTotals]:
        return self._source.declared_totals()


class _Lines(msgspec.Struct, tag="lines", array_like=True, gc=False):
    lines: list[BatchLine]
    prepared: list[PreparedLine]
    fields: bytes
    content: bytes


class _Done(msgspec.Struct, tag="done", array_like=True):
    declared: list[DeclaredTotals]


class _Failed(msgspec.Struct, tag="failed", array_like=True):
    error: str
    message: str


_Message = _Lines | _Done | _Failed
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Message)
# The errors reading raises, by name: the message crosses the pipe, not the object.
_FILE_ERRORS = {cls.__name__: cls for cls in (errors.FileFormatError, errors.FileEncodingError)}


def _read(path: Path, encoding: str | None, today: datetime.date, chunk_lines: int, pipe: Connection) -> None:
    """The child: the chunks, then the totals or the file error, over ``pipe``."""
    # Ctrl-C reaches the terminal's whole process group; the parent decides what it means
    # and closes the pipe, which ends this child (BrokenPipeError below) without a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reader = InProcessReader(TabularBatchFile(path, encoding), today, chunk_lines)
    try:
        try:
            for chunk in reader.chunks():
                pipe.send_bytes(_ENCODER.encode(_Lines(*chunk)))
            end: _Message = _Done(reader.declared_totals())
        except errors.FileFormatError as error:
            # The whole chunks before the error are the consumer's; the chunk the error cut
            # short was never yielded (InProcessReader), as when reading in this process.
            end = _Failed(type(error).__name__, str(error))
        pipe.send_bytes(_ENCODER.encode(end))
    except (BrokenPipeError, ConnectionResetError):
        # The consumer stopped early (it closed the pipe); nothing is waiting.
        pass
    finally:
        pipe.close()


class ReadAheadReader:
    """:class:`ChunkReader` whose reading and preparing run in a spawned child process
    (see the module docstring); ``path`` and ``encoding`` as for
    :class:`~adapters.batch_file.TabularBatchFile`."""

    def __init__(self, path: Path, encoding: str | None, today: datetime.date, chunk_lines: int) -> None:
        self.path = Path(path)
        self._encoding = encoding
        self._today = today
        self._chunk_lines = chunk_lines
        self._declared: list[DeclaredTotals] = []

    def chunks(self) -> Iterator[Chunk]:
        context = multiprocessing.get_context("spawn")
        receiving, sending = context.Pipe(duplex=False)
        child = context.Process(target=_read, args=(self.path, self._encoding, self._today, self._chunk_lines, sending),
                                daemon=True)
        child.start()
        sending.close()
        try:
            while True:
                try:
                    message = _DECODER.decode(receiving.recv_bytes())
                except (EOFError, OSError):
                    # EOFError between messages; OSError ("got end of file during message")
                    # when the child died while sending one.
                    child.join(CHILD_EXIT_S_MAX)
                    raise ReaderProcessError(f"{self.path.name}: the process reading the file ended without a "
                                             f"result (exit code {child.exitcode})") from None
                match message:
                    case _Lines(lines, prepared, fields, content):
                        yield lines, prepared, fields, content
                    case _Done(declared):
                        self._declared = declared
                        return
                    case _Failed(error, text):
                        raise _FILE_ERRORS.get(error, errors.FileFormatError)(text)
        finally:
            receiving.close()
            child.join(CHILD_EXIT_S_MAX)
            if child.exitcode is None:
                child.kill()
                child.join()

    def declared_totals(self) -> list[DeclaredTotals]:
        return list(self._declared)
