"""The ledger store against a real PostgreSQL: round trips, timestamps, queries, bad input."""

import asyncio

import pytest
from hypothesis import given, strategies as st

from ledger.errors import InvalidRequestError
from ledger.limits import AMOUNT_MAX, BATCH_MAX
from ledger.results import CreateAccountResult as A
from ledger.results import CreateTransferResult as R
from ledger import service
from ledger.service import Ledger
from ledger.types import Account, AccountBalance, AccountFilter, AccountFilterFlags as FF
from ledger.types import AccountFlags as AF, Transfer, TransferFlags as F

BIG = 2**127 + 12345  # a 128-bit id above the signed range


def tr(id, debit, credit, amount, **fields):
    return Transfer(id=id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=1, code=1, **fields)


async def setup(pool, *flags):
    ledger = Ledger(pool)
    accounts = [Account(id=i + 1, ledger=1, code=1, flags=f) for i, f in enumerate(flags)]
    assert await ledger.create_accounts(accounts) == [A.ok] * len(accounts)
    return ledger


async def count(pool, table):
    async with pool.acquire() as connection:
        return await connection.fetchval(f"SELECT count(*) FROM {table}")


async def test_round_trip_keeps_every_field(pool):
    ledger = Ledger(pool)
    account = Account(id=BIG, user_data_128=2**128 - 2, user_data_64=2**64 - 1, user_data_32=2**32 - 1,
                      ledger=156, code=3, flags=AF.history)
    assert await ledger.create_accounts([account, Account(id=7, ledger=156, code=1)]) == [A.ok, A.ok]
    [stored] = await ledger.lookup_accounts([BIG])
    assert stored.timestamp > 0
    assert stored == Account(**{**{f: getattr(account, f) for f in account.__struct_fields__}, "timestamp": stored.timestamp})
    transfer = Transfer(id=BIG + 1, debit_account_id=BIG, credit_account_id=7, amount=AMOUNT_MAX, user_data_128=5,
                        user_data_64=2**63, user_data_32=9, ledger=156, code=4)
    assert await ledger.create_transfers([transfer]) == [R.ok]
    [got] = await ledger.lookup_transfers([BIG + 1, 12345])
    assert got.timestamp > stored.timestamp
    assert (got.amount, got.user_data_64, got.debit_account_id) == (AMOUNT_MAX, 2**63, BIG)
    [debit, credit] = await ledger.lookup_accounts([BIG, 7])
    assert (debit.debits_posted, credit.credits_posted) == (AMOUNT_MAX, AMOUNT_MAX)


async def test_timestamps_strictly_increase_across_batches(pool):
    ledger = await setup(pool, 0, 0)
    for first in (10, 20, 30):
        batch = [tr(first + k, 1, 2, 1) for k in range(3)]
        assert await ledger.create_transfers(batch) == [R.ok] * 3
    stamps = [t.timestamp for t in await ledger.lookup_transfers([10, 11, 12, 20, 21, 22, 30, 31, 32])]
    assert stamps == sorted(stamps) and len(set(stamps)) == 9


@pytest.mark.parametrize(("bad", "message"), [
    (tr(2, 1, 2, -1), "transfers[1].amount: must be an int in 0..9223372036854775807, got -1"),
    (tr(2, 1, 2, 1.0), "transfers[1].amount: must be an int in 0..9223372036854775807, got 1.0"),
    (tr(2, 1, 2, AMOUNT_MAX + 1), "transfers[1].amount: must be an int in 0..9223372036854775807, got 9223372036854775808"),
    (tr(2**128, 1, 2, 1), "transfers[1].id: must be an int in 0..340282366920938463463374607431768211455"),
    (tr(2, 1, 2, 1, flags=1 << 9), "transfers[1].flags: unknown flag bits 0x200"),
    (tr(2, "1", 2, 1), "transfers[1].debit_account_id: must be an int"),
    (tr(2, 1, 2, True), "transfers[1].amount: must be an int"),
    ({"id": 2}, "transfers[1]: must be Transfer, got dict"),
])
async def test_invalid_input_is_refused_whole(pool, bad, message):
    ledger = await setup(pool, 0, 0)
    with pytest.raises(InvalidRequestError) as raised:
        await ledger.create_transfers([tr(1, 1, 2, 5), bad])
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ValueError)
    assert await count(pool, "ledger_transfers") == 0


async def test_batch_limit(pool):
    ledger = await setup(pool, 0, 0)
    with pytest.raises(InvalidRequestError, match=r"transfers: at most 8189 items per call, got 8190"):
        await ledger.create_transfers([tr(k + 1, 1, 2, 1) for k in range(BATCH_MAX + 1)])
    assert await ledger.create_transfers([tr(k + 1, 1, 2, 1) for k in range(BATCH_MAX)]) == [R.ok] * BATCH_MAX
    [debit] = await ledger.lookup_accounts([1])
    assert debit.debits_posted == BATCH_MAX


async def test_callers_transaction_commits_or_rolls_back_with_the_caller(pool):
    ledger = await setup(pool, 0, 0)
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        assert await ledger.create_transfers([tr(1, 1, 2, 5)], connection=connection) == [R.ok]
        assert await ledger.create_transfers([tr(2, 1, 2, 6)], connection=connection) == [R.ok]
        await transaction.rollback()
        async with connection.transaction():
            assert await ledger.create_transfers([tr(3, 1, 2, 7)], connection=connection) == [R.ok]
    assert [t.id for t in await ledger.lookup_transfers([1, 2, 3])] == [3]
    [debit] = await ledger.lookup_accounts([1])
    assert debit.debits_posted == 7


async def test_field_resend_rules_through_the_store(pool):
    ledger = await setup(pool, 0, 0)
    hold = tr(1, 1, 2, 30, flags=F.pending)
    assert await ledger.create_transfers([hold]) == [R.ok]
    assert await ledger.create_transfers([hold]) == [R.exists]
    assert await ledger.create_transfers([tr(1, 1, 2, 31, flags=F.pending)]) == [R.exists_with_different_amount]
    post = Transfer(id=2, pending_id=1, amount=AMOUNT_MAX, flags=F.post_pending_transfer)
    assert await ledger.create_transfers([post]) == [R.ok]
    assert await ledger.create_transfers([post]) == [R.exists]
    assert await ledger.create_transfers([Transfer(id=3, pending_id=1, amount=1, flags=F.post_pending_transfer)]) == [
        R.pending_transfer_already_posted]
    assert await count(pool, "ledger_transfers") == 2
    [debit, credit] = await ledger.lookup_accounts([1, 2])
    assert (debit.debits_pending, debit.debits_posted, credit.credits_posted) == (0, 30, 30)


async def test_pending_expiry(pool):
    ledger = await setup(pool, 0, 0)
    assert await ledger.create_transfers([tr(1, 1, 2, 40, flags=F.pending, timeout_s=1), tr(2, 1, 2, 2, flags=F.pending)]) == [R.ok, R.ok]
    [hold] = await ledger.lookup_transfers([1])
    assert await ledger.expire_pending_transfers(now_ns=hold.timestamp + 10**9 - 1) == 0
    assert await ledger.expire_pending_transfers(now_ns=hold.timestamp + 10**9) == 1
    assert await ledger.expire_pending_transfers(now_ns=hold.timestamp + 10**9) == 0
    [debit] = await ledger.lookup_accounts([1])
    assert debit.debits_pending == 2
    post = Transfer(id=3, pending_id=1, amount=AMOUNT_MAX, flags=F.post_pending_transfer)
    assert await ledger.create_transfers([post]) == [R.pending_transfer_expired]


async def test_get_account_transfers_filters(pool):
    ledger = await setup(pool, 0, 0, 0)
    batch = [tr(1, 1, 2, 1), tr(2, 2, 1, 2), tr(3, 1, 3, 3, user_data_32=7), Transfer(
        id=4, debit_account_id=3, credit_account_id=1, amount=4, ledger=1, code=9)]
    assert await ledger.create_transfers(batch) == [R.ok] * 4
    ids = lambda rows: [t.id for t in rows]  # noqa: E731
    assert ids(await ledger.get_account_transfers(AccountFilter(account_id=1))) == [1, 2, 3, 4]
    assert ids(await ledger.get_account_transfers(AccountFilter(account_id=1, flags=FF.debits))) == [1, 3]
    assert ids(await ledger.get_account_transfers(AccountFilter(account_id=1, flags=FF.credits | FF.reversed))) == [4, 2]
    assert ids(await ledger.get_account_transfers(AccountFilter(account_id=1, limit=2))) == [1, 2]
    assert ids(await ledger.get_account_transfers(AccountFilter(account_id=1, code=9))) == [4]
    assert ids(await ledger.get_account_transfers(AccountFilter(account_id=1, user_data_32=7))) == [3]
    [_, second, third, _] = await ledger.lookup_transfers([1, 2, 3, 4])
    window = AccountFilter(account_id=1, timestamp_min=second.timestamp, timestamp_max=third.timestamp)
    assert ids(await ledger.get_account_transfers(window)) == [2, 3]
    with pytest.raises(InvalidRequestError, match="filter.flags: must select debits, credits or both"):
        await ledger.get_account_transfers(AccountFilter(account_id=1, flags=FF.reversed))


async def test_get_account_balances_of_history_account(pool):
    ledger = await setup(pool, AF.history, 0)
    assert await ledger.create_transfers([tr(1, 1, 2, 5), tr(2, 2, 1, 3), tr(3, 1, 2, 4, flags=F.pending)]) == [R.ok] * 3
    stamps = [t.timestamp for t in await ledger.lookup_transfers([1, 2, 3])]
    assert await ledger.get_account_balances(AccountFilter(account_id=1)) == [
        AccountBalance(0, 5, 0, 0, stamps[0]), AccountBalance(0, 5, 0, 3, stamps[1]), AccountBalance(4, 5, 0, 3, stamps[2])]
    assert await ledger.get_account_balances(AccountFilter(account_id=2)) == []


async def test_same_new_id_racing_on_different_accounts(pool):
    ledger = await setup(pool, 0, 0, 0, 0)
    results = await asyncio.gather(
        ledger.create_transfers([tr(9, 1, 2, 5)]), ledger.create_transfers([tr(9, 3, 4, 5)]))
    assert sorted(r for [r] in results) == sorted([R.ok, R.exists_with_different_debit_account_id])
    assert await count(pool, "ledger_transfers") == 1


async def test_two_caller_transactions_with_the_same_id_need_no_retry(pool):
    ledger = await setup(pool, 0, 0, 0, 0)
    async with pool.acquire() as first, pool.acquire() as second:
        outer = first.transaction()
        await outer.start()
        assert await ledger.create_transfers([tr(9, 1, 2, 5)], connection=first) == [R.ok]
        async with second.transaction():
            # The second caller waits for the journal head until the first commits.
            racing = asyncio.create_task(ledger.create_transfers([tr(9, 3, 4, 5)], connection=second))
            await asyncio.sleep(0.2)
            assert not racing.done()
            await outer.commit()
            assert await racing == [R.exists_with_different_debit_account_id]
    assert await count(pool, "ledger_transfers") == 1


async def journal_kinds(pool):
    async with pool.acquire() as connection:
        return [row[0] for row in await connection.fetch("SELECT kind FROM ledger_journal ORDER BY sequence")]


async def test_fast_path_commits_plain_batches_in_one_journal_batch(pool):
    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    assert await ledger.create_transfers([tr(10, 1, 2, 100)]) == [R.ok]
    # Debits of the limited account 2 up to exactly its credits before the batch.
    assert await ledger.create_transfers([tr(11, 2, 3, 60), tr(12, 2, 3, 40)]) == [R.ok] * 2
    assert (ledger.fast_batches, ledger.fast_declined) == (2, 0)
    async with pool.acquire() as connection:  # a connection outside a transaction: its own commit
        assert await ledger.create_transfers([tr(13, 1, 3, 0)], connection=connection) == [R.ok]
        assert not connection.is_in_transaction()
    assert ledger.fast_batches == 3
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [(100, 0), (100, 100), (0, 100)]
    stamps = [t.timestamp for t in await ledger.lookup_transfers([10, 11, 12])]
    assert stamps[0] > max(a.timestamp for a in accounts) and stamps[1:] == [stamps[1], stamps[1] + 1]
    assert stamps[1] > stamps[0]
    assert await journal_kinds(pool) == [1, 4, 4, 4]
    report = await audit_report(pool)
    assert report.ok, report


async def audit_report(pool):
    from ledger.audit import audit

    async with pool.acquire() as connection:
        return await audit(connection)


@pytest.mark.parametrize("batch, expected", [
    # Account 2 (debit-limited) is funded by the first transfer: the exact rules pass it in
    # order, while the fast path's whole-batch test (debits against credits before the
    # batch) cannot tell, so it hands the batch over.
    ([tr(10, 1, 2, 100), tr(11, 2, 3, 60)], [R.ok, R.ok]),
    ([tr(10, 2, 3, 1), tr(11, 1, 2, 5)], [R.exceeds_credits, R.ok]),
    ([tr(10, 1, 3, 5), tr(11, 1, 9, 5)], [R.ok, R.credit_account_not_found]),
    ([tr(10, 1, 3, 5), tr(11, 1, 4, 5)], [R.ok, R.accounts_must_have_the_same_ledger]),
    ([tr(10, 1, 3, 5), tr(11, 1, 5, 5)], [R.ok, R.ok]),  # a history account: rows below
])
async def test_fast_path_hands_over_what_it_cannot_decide(pool, batch, expected):
    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    assert await ledger.create_accounts([Account(id=4, ledger=2, code=1), Account(id=5, ledger=1, code=1, flags=AF.history)]) == [A.ok] * 2
    assert await ledger.create_transfers(batch) == expected
    assert (ledger.fast_batches, ledger.fast_declined) == (0, 1)
    assert await journal_kinds(pool) == [1, 1, 2]  # accounts, accounts, one exact transfer batch
    if batch[-1].credit_account_id == 5:
        assert len(await ledger.get_account_balances(AccountFilter(account_id=5))) == 1
    report = await audit_report(pool)
    assert report.ok, report


async def test_fast_path_hands_over_a_stored_id_and_skips_what_it_need_not_try(pool):
    ledger = await setup(pool, 0, 0)
    assert await ledger.create_transfers([tr(10, 1, 2, 5)]) == [R.ok]
    # The stored id fails the fast path's insert (unique violation): the exact path answers.
    assert await ledger.create_transfers([tr(11, 1, 2, 5), tr(10, 1, 2, 5)]) == [R.ok, R.exists]
    assert (ledger.fast_batches, ledger.fast_declined) == (1, 1)
    # Flags, a repeated id or equal accounts never reach the server's fast path.
    for batch in ([tr(12, 1, 2, 5, flags=F.pending)], [tr(13, 1, 2, 5), tr(13, 1, 2, 5)], [tr(14, 1, 1, 5)]):
        await ledger.create_transfers(batch)
    assert (ledger.fast_batches, ledger.fast_declined) == (1, 1)
    [debit] = await ledger.lookup_accounts([1])
    assert (debit.debits_pending, debit.debits_posted) == (5, 15)


@pytest.mark.parametrize("before, batch, expected, balances", [
    # The batch's debits of account 1 add up past AMOUNT_MAX: declined before the head is
    # taken (the sums do not fit a bigint); the exact rules stop at the second transfer.
    ([], [tr(10, 1, 3, AMOUNT_MAX), tr(11, 1, 2, 1)], [R.ok, R.overflows_debits_posted], [(AMOUNT_MAX, 0), (0, 0), (0, AMOUNT_MAX)]),
    # Stored balance + batch overflows: declined by the balance update under the head.
    ([tr(9, 1, 3, AMOUNT_MAX - 1)], [tr(10, 1, 2, 1), tr(11, 1, 2, 1)], [R.ok, R.overflows_debits_posted],
     [(AMOUNT_MAX, 0), (0, 1), (0, AMOUNT_MAX - 1)]),
    # Pending + posted + batch overflows, though posted + batch alone would not.
    ([tr(9, 1, 3, AMOUNT_MAX - 1, flags=F.pending)], [tr(10, 1, 2, 1), tr(11, 1, 2, 1)], [R.ok, R.overflows_debits],
     [(1, 0), (0, 1), (0, 0)]),
    # A limited account spending one more than its credits, its debits pending and posted.
    ([tr(8, 1, 2, 10), tr(9, 2, 3, 4, flags=F.pending)], [tr(10, 2, 3, 5), tr(11, 2, 3, 2)], [R.ok, R.exceeds_credits],
     [(10, 0), (5, 10), (0, 5)]),
])
async def test_fast_path_declines_overflows_and_limits_with_exact_results(pool, before, batch, expected, balances):
    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    if before:
        assert await ledger.create_transfers(before) == [R.ok] * len(before)
    declined = ledger.fast_declined
    assert await ledger.create_transfers(batch) == expected
    assert ledger.fast_declined == declined + 1
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == balances
    report = await audit_report(pool)
    assert report.ok, report


async def test_fast_path_in_a_callers_transaction_keeps_it_usable(pool, monkeypatch):
    monkeypatch.setattr(service, "FAST_NESTED_ROWS_MIN", 1)
    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    async with pool.acquire() as connection:
        async with connection.transaction():
            assert await ledger.create_transfers([tr(10, 1, 2, 100)], connection=connection) == [R.ok]
            # Head held from the first call; the limit test declines (2 is funded in the
            # batch), the exact rules decide in the same transaction.
            assert await ledger.create_transfers([tr(11, 1, 2, 5), tr(12, 2, 3, 105)],
                                                 connection=connection) == [R.ok, R.ok]
            # A stored id: a unique violation under the savepoint, not an aborted transaction.
            assert await ledger.create_transfers([tr(13, 1, 3, 7), tr(10, 1, 2, 100)],
                                                 connection=connection) == [R.ok, R.exists]
            assert (ledger.fast_batches, ledger.fast_declined) == (1, 2)
            await connection.execute("SELECT 1")
        transaction = connection.transaction()
        await transaction.start()
        assert await ledger.create_transfers([tr(14, 1, 3, 9)], connection=connection) == [R.ok]
        await transaction.rollback()
    assert ledger.fast_batches == 2
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [(112, 0), (105, 105), (0, 112)]
    assert [t.id for t in await ledger.lookup_transfers([10, 11, 12, 13, 14])] == [10, 11, 12, 13]
    assert await journal_kinds(pool) == [1, 4, 2, 2]
    report = await audit_report(pool)
    assert report.ok, report


async def test_fast_path_function_in_a_caller_transaction_declines_with_its_sqlstate(pool):
    import hashlib

    import asyncpg

    from ledger.service import FAST_DECLINED, _CREATE_FAST, _fast_records

    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    good, bad = _fast_records([tr(10, 1, 2, 7)]), _fast_records([tr(11, 2, 3, 8)])
    async with pool.acquire() as connection, connection.transaction():
        assert await connection.fetchval(_CREATE_FAST, good, hashlib.sha256(good).digest(), 1) is True
        with pytest.raises(asyncpg.PostgresError) as declined:
            async with connection.transaction():  # a savepoint: only the declined call rolls back
                await connection.fetchval(_CREATE_FAST, bad, hashlib.sha256(bad).digest(), 1)
        assert declined.value.sqlstate == FAST_DECLINED
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [(7, 0), (0, 7), (0, 0)]
    assert await journal_kinds(pool) == [1, 4]
    report = await audit_report(pool)
    assert report.ok, report


async def test_fast_path_waits_for_a_caller_transaction_holding_the_head(pool):
    from ledger.service import FAST_TURN_ROWS_MIN

    ledger = await setup(pool, 0, 0, 0)
    large = [tr(100 + i, 1, 3, 1) for i in range(FAST_TURN_ROWS_MIN)]  # the procedure's size
    async with pool.acquire() as connection:
        outer = connection.transaction()
        await outer.start()
        assert await ledger.create_transfers([tr(10, 1, 2, 5, flags=F.pending)], connection=connection) == [R.ok]
        # The exact path holds the head's row lock; the fast path's LOCK TABLE waits for it.
        fast = asyncio.create_task(ledger.create_transfers(large))
        await asyncio.sleep(0.3)
        assert not fast.done()
        await outer.commit()
    assert await fast == [R.ok] * len(large)
    assert ledger.fast_batches == 1
    first, second = await ledger.lookup_transfers([10, 100])
    assert second.timestamp > first.timestamp
    report = await audit_report(pool)
    assert report.ok, report


async def test_fast_path_overtaken_by_a_commit_tries_again_with_later_timestamps(pool):
    from ledger.service import FAST_TURN_ROWS_MIN

    ledger = await setup(pool, 0, 0, 0)
    large = [tr(100 + i, 1, 3, 1) for i in range(FAST_TURN_ROWS_MIN)]
    async with pool.acquire() as connection:
        outer = connection.transaction()
        await outer.start()
        await connection.execute("SELECT 1 FROM ledger_head FOR UPDATE")  # the head is held
        # The fast path inserts its transfers, stamped after the last commit, and waits...
        fast = asyncio.create_task(ledger.create_transfers(large))
        await asyncio.sleep(0.3)
        assert not fast.done()
        # ...while the head's holder writes later timestamps and commits first.
        assert await ledger.create_transfers([tr(10, 1, 2, 5, flags=F.pending)], connection=connection) == [R.ok]
        await outer.commit()
    assert await fast == [R.ok] * len(large)
    assert (ledger.fast_batches, ledger.fast_overtaken, ledger.fast_declined) == (1, 1, 0)
    first, second = await ledger.lookup_transfers([10, 100])
    assert second.timestamp > first.timestamp
    assert await count(pool, "ledger_transfers") == 1 + len(large)
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) for a in accounts] == [
        (5, len(large), 0, 0), (0, 0, 5, 0), (0, 0, 0, len(large))]
    report = await audit_report(pool)
    assert report.ok, report


async def test_large_fast_path_batch_declined_under_the_head_gets_exact_results(pool):
    from ledger.service import FAST_TURN_ROWS_MIN

    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    assert await ledger.create_transfers([tr(10, 1, 2, 100)]) == [R.ok]
    # 256 debits of 1 from an account with 100 credits: the procedure inserts them, then its
    # balance update declines the batch (OCF01) and the exact rules decide each transfer.
    large = [tr(100 + i, 2, 3, 1) for i in range(FAST_TURN_ROWS_MIN)]
    assert await ledger.create_transfers(large) == [R.ok] * 100 + [R.exceeds_credits] * (len(large) - 100)
    assert (ledger.fast_batches, ledger.fast_declined) == (1, 1)
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [(100, 0), (100, 100), (0, 100)]
    assert await count(pool, "ledger_transfers") == 101
    assert await journal_kinds(pool) == [1, 4, 2]
    report = await audit_report(pool)
    assert report.ok, report


async def test_large_fast_path_batch_its_sums_decline_after_the_insert_gets_exact_results(pool):
    from ledger.service import FAST_TURN_ROWS_MIN

    ledger = await setup(pool, 0, 0, 0)
    # Account 1's debits add up past AMOUNT_MAX: the procedure inserts the batch, gives the
    # turn back, then its sums decline it (OCF01): rolled back, the exact rules decide.
    large = [tr(100, 1, 3, AMOUNT_MAX)] + [tr(101 + i, 1, 2, 1) for i in range(FAST_TURN_ROWS_MIN - 1)]
    assert await ledger.create_transfers(large) == [R.ok] + [R.overflows_debits_posted] * (len(large) - 1)
    assert (ledger.fast_batches, ledger.fast_declined) == (0, 1)
    assert not ledger._fast_turn.locked()
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [(AMOUNT_MAX, 0), (0, 0), (0, AMOUNT_MAX)]
    assert await count(pool, "ledger_transfers") == 1
    assert await journal_kinds(pool) == [1, 2]
    report = await audit_report(pool)
    assert report.ok, report


async def test_concurrent_large_fast_path_batches_take_turns_and_commit_in_timestamp_order(pool):
    from ledger.service import FAST_TURN_ROWS_MIN

    ledger = await setup(pool, 0, 0, 0)
    size = FAST_TURN_ROWS_MIN
    batches = [[tr(1000 * (b + 1) + i, 1, 2 + b % 2, 1) for i in range(size)] for b in range(3)]
    results = await asyncio.gather(*(ledger.create_transfers(batch) for batch in batches))
    assert results == [[R.ok] * size] * 3
    assert (ledger.fast_batches, ledger.fast_declined) == (3, 0)
    assert not ledger._fast_turn.locked()  # every turn given back
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [(3 * size, 0), (0, 2 * size), (0, size)]
    async with pool.acquire() as connection:
        # Commit order (journal sequence) is timestamp order.
        rows = await connection.fetch("SELECT timestamp_first, timestamp_last FROM ledger_journal WHERE kind = 4 ORDER BY sequence")
    assert [r[1] - r[0] + 1 for r in rows] == [size] * 3
    assert all(a[1] < b[0] for a, b in zip(rows, rows[1:]))
    report = await audit_report(pool)
    assert report.ok, report


async def test_small_batches_in_a_callers_transaction_take_the_exact_path(pool):
    ledger = await setup(pool, 0, 0)
    small = [tr(10 + i, 1, 2, 1) for i in range(service.FAST_NESTED_ROWS_MIN - 1)]
    large = [tr(1000 + i, 1, 2, 1) for i in range(service.FAST_NESTED_ROWS_MIN)]
    async with pool.acquire() as connection, connection.transaction():
        assert await ledger.create_transfers(small, connection=connection) == [R.ok] * len(small)
        assert (ledger.fast_batches, ledger.fast_declined) == (0, 0)
        assert await ledger.create_transfers(large, connection=connection) == [R.ok] * len(large)
        assert (ledger.fast_batches, ledger.fast_declined) == (1, 0)
    [debit] = await ledger.lookup_accounts([1])
    assert debit.debits_posted == 2 * service.FAST_NESTED_ROWS_MIN - 1
    assert await journal_kinds(pool) == [1, 2, 4]


def _reference_records(transfers):
    """The fast-path records as encoded transfer by transfer (the exact path's rows)."""
    from ledger.journal import transfer_prefixes
    from ledger.limits import ID_MAX

    for t in transfers:
        if (t.flags or t.pending_id or t.timeout_s or t.timestamp or not t.ledger or not t.code
                or not 0 < t.id < ID_MAX or not 0 < t.debit_account_id < ID_MAX
                or not 0 < t.credit_account_id < ID_MAX or t.debit_account_id == t.credit_account_id):
            return None
    if len({t.id for t in transfers}) != len(transfers):
        return None
    return transfer_prefixes(map(service._transfer_prefix, transfers))


_ids = st.sampled_from([0, 1, 2, 3, 2**64, BIG, 2**128 - 2, 2**128 - 1])
_transfers = st.builds(
    Transfer, id=_ids, debit_account_id=_ids, credit_account_id=_ids, amount=st.integers(0, AMOUNT_MAX),
    pending_id=st.sampled_from([0, 0, 0, 5]), user_data_128=st.sampled_from([0, 0, 7, 2**128 - 1]),
    user_data_64=st.sampled_from([0, 9, 2**63 - 1, 2**63, 2**64 - 1]), user_data_32=st.sampled_from([0, 2**32 - 1]),
    timeout_s=st.sampled_from([0, 0, 0, 1]), ledger=st.sampled_from([0, 1, 156, 2**32 - 1]),
    code=st.sampled_from([0, 1, F.linked, 2**16 - 1]), flags=st.sampled_from([0, 0, 0, F.pending, F.linked]),
    timestamp=st.sampled_from([0, 0, 0, 1]),
)


@given(st.lists(_transfers, min_size=1, max_size=6))
def test_fast_records_column_by_column_match_the_rows_of_the_exact_path(transfers):
    # IntFlag members (code=F.linked) make check_batch answer None: then the columns are made
    # from the transfers, and the records must be the same either way.
    from ledger.types import check_batch

    expected = _reference_records(transfers)
    assert service._fast_records(transfers, check_batch("transfers", transfers, Transfer, BATCH_MAX)) == expected
    assert service._fast_records(transfers) == expected
    if expected is not None:
        assert len(expected) == 120 * len(transfers)
