"""The micro-batcher: order, batch sizes, failures isolated to their batch."""

from __future__ import annotations

import asyncio

import pytest

from engine.taps.batcher import MicroBatcher, QueueFullError


async def test_concurrent_items_share_flushes_in_order():
    flushed = []

    async def flush(items):
        flushed.append(list(items))
        await asyncio.sleep(0)
        return [item * 10 for item in items]

    batcher = MicroBatcher(flush, flush_size_max=4, flush_delay_ms=5)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    assert results == [n * 10 for n in range(10)]
    assert [n for batch in flushed for n in batch] == list(range(10))
    assert max(len(batch) for batch in flushed) == 4 and len(flushed) == 3


async def test_a_failed_flush_fails_only_its_items():
    async def flush(items):
        if 0 in items:
            raise ConnectionError("database away")
        return items

    batcher = MicroBatcher(flush, flush_size_max=2, flush_delay_ms=1)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert isinstance(results[0], ConnectionError) and isinstance(results[1], ConnectionError)
    assert results[2:] == [2, 3]


async def test_batching_off_flushes_each_item_alone():
    sizes = []

    async def flush(items):
        sizes.append(len(items))
        return items

    batcher = MicroBatcher(flush, flush_size_max=1, flush_delay_ms=0)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(5))) == list(range(5))
    assert sizes == [1] * 5


async def test_a_full_queue_sheds_load():
    release = asyncio.Event()

    async def flush(items):
        await release.wait()
        return items

    batcher = MicroBatcher(flush, flush_size_max=2, flush_delay_ms=0, queued_max=2)
    waiting = [asyncio.ensure_future(batcher.submit(n)) for n in range(2)]
    await asyncio.sleep(0)
    queued = [asyncio.ensure_future(batcher.submit(n)) for n in range(2, 4)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError):
        await batcher.submit(9)
    release.set()
    assert await asyncio.gather(*waiting, *queued) == [0, 1, 2, 3]
