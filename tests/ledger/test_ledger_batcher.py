"""The group-commit batcher: coalescing, linked groups, bad input, failures, close."""

import asyncio

import pytest

from ledger.batcher import GroupCommitBatcher
from ledger.errors import InvalidRequestError
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.types import Account, Transfer, TransferFlags as F


def tr(id, amount=1, **fields):
    return Transfer(**{**dict(id=id, debit_account_id=1, credit_account_id=2, amount=amount, ledger=1, code=1), **fields})


async def ready(pool) -> Ledger:
    ledger = Ledger(pool)
    await ledger.create_accounts([Account(id=1, ledger=1, code=1), Account(id=2, ledger=1, code=1)])
    return ledger


async def test_concurrent_submits_share_flushes_and_get_their_own_results(pool):
    ledger = await ready(pool)
    sizes = []
    async with GroupCommitBatcher(ledger, flush_delay_ms=20, on_flush=lambda n, s: sizes.append(n)) as batcher:
        results = await asyncio.gather(*(batcher.submit(tr(10 + k, code=0 if k == 3 else 1)) for k in range(50)))
    assert results == [R.code_must_not_be_zero if k == 3 else R.ok for k in range(50)]
    assert sum(sizes) == 50 and len(sizes) < 50
    assert batcher.flushes == len(sizes) and batcher.transfers_flushed == 50


async def test_linked_group_stays_together(pool):
    ledger = await ready(pool)
    async with GroupCommitBatcher(ledger, flush_delay_ms=10) as batcher:
        group, single = await asyncio.gather(
            batcher.submit_linked([tr(1, flags=F.linked), tr(2, code=0)]), batcher.submit(tr(3)))
    assert group == [R.linked_event_failed, R.code_must_not_be_zero] and single == R.ok


async def test_bad_input_is_refused_for_that_caller_alone(pool):
    ledger = await ready(pool)
    async with GroupCommitBatcher(ledger, flush_delay_ms=10) as batcher:
        with pytest.raises(InvalidRequestError, match=r"transfers\[0\].amount"):
            await batcher.submit(tr(1, amount=-5))
        with pytest.raises(InvalidRequestError, match="linked is only allowed through submit_linked"):
            await batcher.submit(tr(2, flags=F.linked))
        with pytest.raises(InvalidRequestError, match=r"transfers\[1\].flags: the last of a group must not be linked"):
            await batcher.submit_linked([tr(3, flags=F.linked), tr(4, flags=F.linked)])
        assert await batcher.submit(tr(5)) == R.ok
    with pytest.raises(InvalidRequestError, match="batcher: closed"):
        await batcher.submit(tr(6))


async def test_a_failed_flush_reaches_every_caller(pool):
    ledger = await ready(pool)
    await pool.close()
    batcher = GroupCommitBatcher(ledger, flush_delay_ms=5)
    outcomes = await asyncio.gather(batcher.submit(tr(1)), batcher.submit(tr(2)), return_exceptions=True)
    assert all(isinstance(o, Exception) for o in outcomes)
    await batcher.close()
