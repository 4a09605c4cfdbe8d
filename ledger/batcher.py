"""Group commit: many concurrent single-transfer callers share one ledger round trip.

Callers ``await batcher.submit(transfer)``; the batcher queues them and flushes a batch
to :meth:`ledger.service.Ledger.create_transfers` when ``flush_size_max`` transfers wait
or ``flush_delay_ms`` after the first one arrived, whichever comes first. While flushes
are in flight, new callers queue up, so batches grow with load. Each caller gets its own
result once the batch has COMMITTED (the ledger commits with ``synchronous_commit`` on):
acknowledged means durable.

A small linked group (``submit_linked``) always lands in one batch, contiguous, so its
chain cannot run into another caller's transfers.

What it cannot do: a caller cancelled after its batch was sent may still see the
transfer committed; resending the same transfer (same id) returns ``exists``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Sequence

from ledger.errors import InvalidRequestError
from ledger.limits import BATCH_MAX
from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.types import Transfer, TransferFlags, check_batch

FLUSH_DELAY_MS_DEFAULT = 1.0
FLUSHES_IN_FLIGHT_MAX = 2

FlushHook = Callable[[int, float], None]
"""Called after each flush with (transfers in the batch, seconds from send to commit)."""


class _Entry:
    __slots__ = ("transfers", "future")

    def __init__(self, transfers: Sequence[Transfer], future: asyncio.Future) -> None:
        self.transfers = transfers
        self.future = future


class GroupCommitBatcher:
    """Coalesce concurrent ``submit`` calls into ``create_transfers`` batches.

    Parameters
    ----------
    ledger : Ledger
    flush_size_max : int
        Most transfers per batch (1 .. ``BATCH_MAX``).
    flush_delay_ms : float
        Longest wait, in milliseconds, from the first queued transfer to its flush.
    flushes_in_flight_max : int
        Batches committing at once (more overlap Python and database work).
    on_flush : FlushHook, optional
        Metrics hook, e.g. Prometheus histograms of flush size and commit latency.

    Use as ``async with GroupCommitBatcher(ledger) as batcher: ...`` or call
    :meth:`close` to flush what is queued and stop.
    """

    def __init__(self, ledger: Ledger, *, flush_size_max: int = BATCH_MAX,
                 flush_delay_ms: float = FLUSH_DELAY_MS_DEFAULT,
                 flushes_in_flight_max: int = FLUSHES_IN_FLIGHT_MAX, on_flush: FlushHook | None = None) -> None:
        assert 1 <= flush_size_max <= BATCH_MAX
        assert 0 <= flush_delay_ms <= 1000
        assert 1 <= flushes_in_flight_max <= 64
        self._ledger = ledger
        self._flush_size_max = flush_size_max
        self._flush_delay_s = flush_delay_ms / 1000
        self._on_flush = on_flush
        self._queue: list[_Entry] = []
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._slots = asyncio.Semaphore(flushes_in_flight_max)
        self._flushing: set[asyncio.Task] = set()
        self._closed = False
        self._runner: asyncio.Task | None = None
        self.flushes = 0
        self.transfers_flushed = 0

    async def __aenter__(self) -> "GroupCommitBatcher":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def submit(self, transfer: Transfer) -> CreateTransferResult:
        """Create one transfer in the next batch; return its result once committed.

        Raises
        ------
        InvalidRequestError
            Malformed transfer, or ``linked`` set (use :meth:`submit_linked`), or closed.
        LedgerError
            The batch could not be written (e.g. database unreachable): nothing committed.
        """
        if isinstance(transfer, Transfer) and transfer.flags & TransferFlags.linked:
            raise InvalidRequestError("transfer.flags: linked is only allowed through submit_linked")
        results = await self._enqueue([transfer])
        return results[0]

    async def submit_linked(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        """Create a small group in one batch, contiguous; one result per transfer.

        Set ``linked`` on all but the last to make it an all-or-nothing chain; the last
        must not have it (it would chain into another caller's transfers).

        Raises
        ------
        InvalidRequestError
            Malformed transfers, more than ``flush_size_max``, or ``linked`` on the last.
        """
        if transfers and isinstance(transfers[-1], Transfer) and transfers[-1].flags & TransferFlags.linked:
            raise InvalidRequestError(f"transfers[{len(transfers) - 1}].flags: the last of a group must not be linked")
        return await self._enqueue(list(transfers))

    async def close(self) -> None:
        """Flush everything queued, wait for the flushes to commit, refuse new submits."""
        self._closed = True
        self._wakeup.set()
        self._full.set()
        if self._runner is not None:
            await self._runner
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    async def _enqueue(self, transfers: list[Transfer]) -> list[CreateTransferResult]:
        check_batch("transfers", transfers, Transfer, self._flush_size_max)
        if self._closed:
            raise InvalidRequestError("batcher: closed")
        if not transfers:
            return []
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Entry(transfers, future))
        self._queued += len(transfers)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        self._wakeup.set()
        if self._queued >= self._flush_size_max:
            self._full.set()
        return await future

    async def _run(self) -> None:
        while not (self._closed and not self._queue):
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._queued < self._flush_size_max and not self._closed:
                self._full.clear()
                try:
                    await asyncio.wait_for(self._full.wait(), self._flush_delay_s)
                except asyncio.TimeoutError:
                    pass
            await self._slots.acquire()
            entries = self._take()
            task = asyncio.create_task(self._flush(entries))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    def _take(self) -> list[_Entry]:
        """Entries from the queue head totalling at most ``flush_size_max`` transfers."""
        taken, size = 0, 0
        while taken < len(self._queue) and size + len(self._queue[taken].transfers) <= self._flush_size_max:
            size += len(self._queue[taken].transfers)
            taken += 1
        entries, self._queue = self._queue[:taken], self._queue[taken:]
        self._queued -= size
        assert entries and self._queued >= 0
        return entries

    async def _flush(self, entries: list[_Entry]) -> None:
        try:
            batch = [transfer for entry in entries for transfer in entry.transfers]
            started = time.perf_counter()
            try:
                results = await self._ledger.create_transfers(batch)
            except Exception as error:  # every waiting caller must learn the batch failed
                for entry in entries:
                    if not entry.future.done():
                        entry.future.set_exception(error)
                return
            elapsed_s = time.perf_counter() - started
            self.flushes += 1
            self.transfers_flushed += len(batch)
            if self._on_flush is not None:
                self._on_flush(len(batch), elapsed_s)
            offset = 0
            for entry in entries:
                count = len(entry.transfers)
                if not entry.future.done():
                    entry.future.set_result(results[offset:offset + count])
                offset += count
            assert offset == len(results)
        finally:
            self._slots.release()
