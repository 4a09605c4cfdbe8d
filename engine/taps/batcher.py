"""Micro-batching for the tap hot path: requests queue, one flush serves many.

A batch is taken as soon as the previous one is handed on, at most ``flush_size_max``
queued items; if fewer are queued it first waits up to ``flush_delay_ms`` for more. So
under load batches grow on their own (group commit) and a lone tap waits at most the
delay. Each batch goes through two stages: ``prepare`` (CPU work without the database:
here, cryptogram checks) and ``flush`` (the database transaction). Flushes run one at a
time, in batch order; the next batch is prepared while the previous one flushes.

With ``flush_size_max=1`` every item is prepared and flushed alone and immediately,
concurrently with the others: the "batching off" mode the benchmark compares against.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Prepared = Any

FLUSH_SIZE_MAX = 512
FLUSH_DELAY_MS = 2.0
QUEUED_MAX = 20_000
assert 1 <= FLUSH_SIZE_MAX <= QUEUED_MAX and FLUSH_DELAY_MS >= 0


class QueueFullError(RuntimeError):
    """More than ``queued_max`` items wait: the caller should answer 503 (shed load)."""


async def _as_is(items: list) -> list:
    return items


class MicroBatcher(Generic[Item, Result]):
    """Queue items and hand them in batches to ``prepare(items) -> prepared`` and then
    ``flush(prepared) -> results`` (one result per item, same order).

    An exception from either stage fails every item of that batch (their futures get the
    exception) and later batches still run.
    """

    def __init__(self, flush: Callable[[Prepared], Awaitable[list[Result]]], *,
                 prepare: Callable[[list[Item]], Awaitable[Prepared]] = _as_is,
                 flush_size_max: int = FLUSH_SIZE_MAX, flush_delay_ms: float = FLUSH_DELAY_MS,
                 queued_max: int = QUEUED_MAX):
        assert 1 <= flush_size_max <= queued_max and flush_delay_ms >= 0
        self._prepare = prepare
        self._flush = flush
        self.flush_size_max = flush_size_max
        self._flush_delay_s = flush_delay_ms / 1000
        self._queued_max = queued_max
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._more = asyncio.Event()
        self._runner: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        """Queue ``item``; return its result once its batch is flushed.

        Raises
        ------
        QueueFullError
            ``queued_max`` items are already waiting.
        """
        if self.flush_size_max == 1:
            return (await self._flush(await self._prepare([item])))[0]
        if len(self._queue) >= self._queued_max:
            raise QueueFullError(f"{len(self._queue)} taps queued; retry later")
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if len(self._queue) >= self.flush_size_max:
            self._more.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        flushing: asyncio.Future | None = None
        while True:
            if not self._queue:
                if flushing is None:
                    return
                await flushing  # items queued meanwhile are taken on the next turn
                flushing = None
                continue
            if len(self._queue) < self.flush_size_max and self._flush_delay_s:
                self._more.clear()
                try:
                    await asyncio.wait_for(self._more.wait(), self._flush_delay_s)
                except asyncio.TimeoutError:
                    pass
            batch, self._queue = (self._queue[:self.flush_size_max],
                                  self._queue[self.flush_size_max:])
            try:
                prepared = await self._prepare([item for item, _ in batch])
            except Exception as error:  # every waiter of this batch gets the failure
                _fail(batch, error)
                continue
            if flushing is not None:
                await flushing
            flushing = asyncio.ensure_future(self._flush_batch(batch, prepared))

    async def _flush_batch(self, batch: list[tuple[Item, asyncio.Future]], prepared) -> None:
        try:
            results = await self._flush(prepared)
        except Exception as error:  # every waiter of this batch gets the failure
            _fail(batch, error)
            return
        assert len(results) == len(batch), "flush must answer every item"
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Flush what is queued and stop."""
        if self._runner is not None:
            self._more.set()
            await self._runner


def _fail(batch: list[tuple[Any, asyncio.Future]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
