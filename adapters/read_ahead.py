"""A CSV or XLSX batch file read in a child process, a chunk ahead of its consumer.

Reading a batch file (decoding, CSV parsing, header mapping, one
:class:`~adapters.batch_file.BatchLine` per line) is about a sixth of submitting it
(``benchmarks/batch.py``). :class:`ReadAheadBatchFile` moves that work to the second
core: a spawned child reads the file with :class:`~adapters.batch_file.TabularBatchFile`
and sends the lines in msgpack chunks of :data:`CHUNK_LINES` over a pipe, while this
process validates the previous chunk. The pipe holds at most about one chunk, so memory
stays a few chunks on both sides, and the lines, their numbers and the declared totals
are exactly those :class:`~adapters.batch_file.TabularBatchFile` gives.

A file error (:class:`~adapters.errors.FileFormatError` and its subclasses) is raised
here with the child's message when the consumer reaches it, after every line before it.
Starting a child costs a few tenths of a second, so :func:`open_batch_file
<adapters.batch_file.open_batch_file>` reads files under :data:`READ_AHEAD_BYTES_MIN`
in this process.
"""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec

from adapters import errors
from adapters.batch_file import BatchLine, TabularBatchFile
from adapters.columns import DeclaredTotals

CHUNK_LINES = 5_000
READ_AHEAD_BYTES_MIN = 16 * 1024 * 1024
CHILD_EXIT_S_MAX = 10.0

assert CHUNK_LINES > 0 and READ_AHEAD_BYTES_MIN > 0


class _Lines(msgspec.Struct, tag="lines", array_like=True, gc=False):
    lines: list[BatchLine]


class _Done(msgspec.Struct, tag="done", array_like=True):
    declared: list[DeclaredTotals]
    ignored_columns: tuple[str, ...]
    peak_rss_kb: int


class _Failed(msgspec.Struct, tag="failed", array_like=True):
    error: str
    message: str


_Message = _Lines | _Done | _Failed
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Message)
# The errors reading raises, by name (the message crosses the pipe, not the object).
_FILE_ERRORS = {cls.__name__: cls for cls in (errors.FileFormatError, errors.FileEncodingError)}


def _read(path: Path, encoding: str | None, chunk_lines: int, pipe: Connection) -> None:
    """The child: the lines in chunks, then the totals or the file error, over ``pipe``."""
    source = TabularBatchFile(path, encoding)
    chunk: list[BatchLine] = []
    try:
        try:
            for line in source.lines():
                chunk.append(line)
                if len(chunk) == chunk_lines:
                    pipe.send_bytes(_ENCODER.encode(_Lines(chunk)))
                    chunk = []
            end: _Message = _Done(source.declared_totals(), source.ignored_columns, _peak_rss_kb())
        except errors.FileFormatError as error:
            # The lines before the error are the consumer's, as when reading in process.
            end = _Failed(type(error).__name__, str(error))
        if chunk:
            pipe.send_bytes(_ENCODER.encode(_Lines(chunk)))
        pipe.send_bytes(_ENCODER.encode(end))
    except (BrokenPipeError, ConnectionResetError):
        # The consumer stopped early (it closed the pipe); nothing is waiting.
        pass
    finally:
        pipe.close()


def _peak_rss_kb() -> int:
    """This process's peak resident memory in KiB: ``VmHWM``, which starts again at exec
    (``ru_maxrss`` would still count the parent's pages shared at the fork before it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class ReadAheadBatchFile:
    """A CSV or XLSX batch file (:class:`~adapters.batch_file.BatchSource`) read by a child
    process; same parameters and results as :class:`~adapters.batch_file.TabularBatchFile`.

    Raises (while iterating)
    ------------------------
    FileEncodingError, FileFormatError
        As :class:`~adapters.batch_file.TabularBatchFile`, with its message.
    """

    def __init__(self, path: Path, encoding: str | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._encoding = encoding
        self._declared: list[DeclaredTotals] = []
        self.ignored_columns: tuple[str, ...] = ()
        # The reader's peak resident memory once it has finished (for the benchmarks).
        self.child_peak_rss_kb = 0

    def lines(self) -> Iterator[BatchLine]:
        """The data lines, numbered from 1; iterate once (raises while iterating, see above)."""
        context = multiprocessing.get_context("spawn")
        receiving, sending = context.Pipe(duplex=False)
        child = context.Process(target=_read, args=(self.path, self._encoding, CHUNK_LINES, sending), daemon=True)
        child.start()
        sending.close()
        try:
            while True:
                try:
                    message = _DECODER.decode(receiving.recv_bytes())
                except EOFError:
                    raise RuntimeError(f"{self.name}: the reader process ended without a result") from None
                match message:
                    case _Lines(lines):
                        yield from lines
                    case _Done(declared, ignored_columns, peak_rss_kb):
                        self._declared, self.ignored_columns = declared, ignored_columns
                        self.child_peak_rss_kb = peak_rss_kb
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
        """Header totals and the totals row, in file order (complete after :meth:`lines`)."""
        return list(self._declared)
