"""Field pitfalls of other ledgers (shared/field-pitfalls.md, "Ledger"), through the store."""

from ledger.limits import AMOUNT_MAX
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.types import Account, AccountFilter, Transfer, TransferFlags as F


def tr(id, amount, **fields):
    return Transfer(**{**dict(id=id, debit_account_id=1, credit_account_id=2, amount=amount, ledger=1, code=1), **fields})


async def ledger_with_two_accounts(pool) -> Ledger:
    ledger = Ledger(pool)
    await ledger.create_accounts([Account(id=1, ledger=1, code=1), Account(id=2, ledger=1, code=1)])
    return ledger


async def balances(ledger):
    return [(a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in await ledger.lookup_accounts([1, 2])]


async def test_last_transfer_still_linked(pool):
    ledger = await ledger_with_two_accounts(pool)
    results = await ledger.create_transfers([tr(1, 5), tr(2, 6), tr(3, 7, flags=F.linked), tr(4, 8, flags=F.linked)])
    assert results == [R.ok, R.ok, R.linked_event_failed, R.linked_event_chain_open]
    assert [t.id for t in await ledger.lookup_transfers([1, 2, 3, 4])] == [1, 2]
    assert await balances(ledger) == [(0, 11, 0, 0), (0, 0, 0, 11)]


async def test_zero_amounts(pool):
    ledger = await ledger_with_two_accounts(pool)
    assert await ledger.create_transfers([tr(1, 0)]) == [R.ok]  # accepted, no balance change
    assert await balances(ledger) == [(0, 0, 0, 0), (0, 0, 0, 0)]
    assert await ledger.create_transfers([tr(2, 100, flags=F.pending)]) == [R.ok]
    assert await ledger.create_transfers([Transfer(id=3, pending_id=2, amount=101, flags=F.post_pending_transfer)]) == [
        R.exceeds_pending_transfer_amount]
    assert await ledger.create_transfers([Transfer(id=4, pending_id=2, amount=0, flags=F.post_pending_transfer)]) == [R.ok]
    assert await balances(ledger) == [(0, 0, 0, 0), (0, 0, 0, 0)]  # posting 0 released the hold
    assert await ledger.create_transfers([Transfer(id=5, pending_id=2, amount=0, flags=F.post_pending_transfer)]) == [
        R.pending_transfer_already_posted]


async def test_resend_while_pending_changed_and_after_post(pool):
    ledger = await ledger_with_two_accounts(pool)
    hold = tr(1, 100, flags=F.pending)
    assert await ledger.create_transfers([hold]) == [R.ok]
    assert await ledger.create_transfers([hold]) == [R.exists]
    assert await ledger.create_transfers([tr(1, 120, flags=F.pending)]) == [R.exists_with_different_amount]
    assert await balances(ledger) == [(100, 0, 0, 0), (0, 0, 100, 0)]
    post = Transfer(id=2, pending_id=1, amount=AMOUNT_MAX, flags=F.post_pending_transfer)
    assert await ledger.create_transfers([post]) == [R.ok]
    assert await ledger.create_transfers([post]) == [R.exists]
    assert await ledger.create_transfers([hold]) == [R.exists]
    assert len(await ledger.get_account_transfers(AccountFilter(account_id=1))) == 2
    assert await balances(ledger) == [(0, 100, 0, 0), (0, 0, 0, 100)]
