"""Attacks on the ledger fast path of migration 0004 (insert before the head): concurrent
writers on the same accounts and ids, a killed client, notices turned off."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap

import asyncpg
import pytest

from ledger import service
from ledger.audit import audit
from ledger.results import CreateTransferResult as R
from ledger.service import FAST_TURN_ROWS_MIN, Ledger
from ledger.types import Account, AccountFlags as AF, Transfer, TransferFlags as F


def tr(id, debit, credit, amount, **fields):
    return Transfer(id=id, debit_account_id=debit, credit_account_id=credit, amount=amount, ledger=1, code=1, **fields)


async def setup(pool, *flags):
    ledger = Ledger(pool)
    accounts = [Account(id=i + 1, ledger=1, code=1, flags=f) for i, f in enumerate(flags)]
    assert await ledger.create_accounts(accounts) == [0] * len(accounts)
    return ledger


async def audit_ok(pool):
    async with pool.acquire() as connection:
        report = await audit(connection)
    assert report.ok, report


async def journal_in_timestamp_order(pool):
    """Journal sequence order is timestamp order, and every transfer lies in one batch's range."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT timestamp_first, timestamp_last FROM ledger_journal ORDER BY sequence")
        assert all(a[1] < b[0] for a, b in zip(rows, rows[1:])), rows
        outside = await connection.fetchval("""
            SELECT count(*) FROM ledger_transfers t WHERE NOT EXISTS (
                SELECT 1 FROM ledger_journal j WHERE j.kind IN (2, 4)
                  AND t.timestamp BETWEEN j.timestamp_first AND j.timestamp_last)""")
        assert outside == 0
        distinct = await connection.fetchval("SELECT count(DISTINCT timestamp) = count(*) FROM ledger_transfers")
        assert distinct


async def waiting_for_the_head(pool):
    """Until a fast-path procedure has inserted its transfers and waits for the head's lock."""
    async with pool.acquire() as connection:
        for _ in range(200):
            if await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL ledger_post_transfers_fast%'"
                    " AND wait_event_type = 'Lock'"):
                return
            await asyncio.sleep(0.05)
    raise AssertionError("no fast-path call waits for the head")


async def test_callers_transaction_writing_an_id_a_waiting_fast_call_inserted_is_not_aborted(pool):
    # A caller's transaction (a disbursement) holds the journal head. An autocommitted large
    # batch meanwhile inserts its transfers (procedure: insert before the head) and waits
    # for the head. The caller then writes a transfer with one of those ids: its insert
    # waits for the procedure's transaction, which waits for the caller's head: a deadlock.
    # The caller came first (it holds the head); its transaction must not be the victim.
    ledger = await setup(pool, 0, 0, 0)
    large = [tr(100 + i, 1, 3, 1) for i in range(FAST_TURN_ROWS_MIN)]
    async with pool.acquire() as connection:
        outer = connection.transaction()
        await outer.start()
        assert await ledger.create_transfers([tr(10, 1, 2, 5)], connection=connection) == [R.ok]
        fast = asyncio.create_task(ledger.create_transfers(large))
        await waiting_for_the_head(pool)
        assert not fast.done()
        # The call has waited past deadlock_timeout (1 s): its own deadlock check ran and
        # found no cycle, so once the caller waits for it, only the caller's check would
        # find one and abort the caller. The call gives way after half of deadlock_timeout
        # instead (migration 0006), before the caller's check runs.
        await asyncio.sleep(1.2)
        mine = None
        try:
            mine = await ledger.create_transfers([tr(100, 1, 2, 5)], connection=connection)
        finally:
            await (outer.rollback() if mine is None else outer.commit())
            results = await fast  # never left running, whichever way the caller ended
    assert mine == [R.ok]
    assert ledger.fast_overtaken >= 1  # it gave way (55P03) and was sent again
    assert results == [R.exists_with_different_credit_account_id] + [R.ok] * (len(large) - 1)
    await audit_ok(pool)
    await journal_in_timestamp_order(pool)


async def test_notices_turned_off_still_commit_every_large_batch(db_url):
    # client_min_messages=warning: no OCF03 notice reaches the client; the turn is then
    # given back when each call ends.
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4,
                                     server_settings={"client_min_messages": "warning"})
    try:
        ledger = await setup(pool, 0, 0, 0)
        size = FAST_TURN_ROWS_MIN
        batches = [[tr(1000 * (b + 1) + i, 1, 2 + b % 2, 1) for i in range(size)] for b in range(4)]
        results = await asyncio.gather(*(ledger.create_transfers(batch) for batch in batches))
        assert results == [[R.ok] * size] * 4
        assert (ledger.fast_batches, ledger.fast_declined) == (4, 0)
        assert not ledger._fast_turn.locked()
        [a1] = await ledger.lookup_accounts([1])
        assert a1.debits_posted == 4 * size
        await audit_ok(pool)
        await journal_in_timestamp_order(pool)
    finally:
        await pool.close()


async def test_two_processes_racing_the_same_ids_write_each_once(pool):
    # Two Ledger objects (two processes: no shared turn) send the same large batch at once
    # (a client's resend), plus a third batch sharing half of its ids.
    first, second = await setup(pool, 0, 0, 0), Ledger(pool)
    size = FAST_TURN_ROWS_MIN
    batch = [tr(100 + i, 1, 2, 1) for i in range(size)]
    overlap = [tr(100 + size // 2 + i, 1, 2, 1) for i in range(size)]
    results = await asyncio.gather(first.create_transfers(batch), second.create_transfers(batch),
                                   second.create_transfers(overlap))
    async with pool.acquire() as connection:
        stored = await connection.fetchval("SELECT count(*) FROM ledger_transfers")
    assert stored == size + size // 2
    [a1, a2] = await first.lookup_accounts([1, 2])
    assert (a1.debits_posted, a2.credits_posted) == (stored, stored)
    assert all(r in (R.ok, R.exists) for result in results for r in result)
    assert sum(r == R.ok for result in results for r in result) == stored
    await audit_ok(pool)
    await journal_in_timestamp_order(pool)


async def test_concurrent_fast_and_exact_writers_at_the_limits_keep_every_invariant(pool):
    # Accounts 1-2 fund a debit-limited account 3 and a credit-limited account 4; fast
    # batches (large and small), exact batches (pending, post, void, linked) and a closed
    # account all race. Afterwards: audit, limits, journal order, and each ok counted once.
    rng = random.Random(6)
    ledger = await setup(pool, 0, 0, AF.debits_must_not_exceed_credits, AF.credits_must_not_exceed_debits,
                         0, AF.closed)
    other = Ledger(pool)
    assert await ledger.create_transfers([tr(1, 1, 3, 300), tr(2, 4, 2, 300)]) == [R.ok] * 2
    next_id = iter(range(10_000, 10**9))

    def plain(n):
        pairs = [(3, 5), (5, 4), (1, 5), (3, 2), (1, 6), (5, 6)]
        return [tr(next(next_id), *rng.choice(pairs), rng.choice([0, 1, 2])) for _ in range(n)]

    async def exact_worker(ledger_):
        for _ in range(6):
            pid = next(next_id)
            assert await ledger_.create_transfers([tr(pid, 3, 5, 3, flags=F.pending)]) in ([R.ok], [R.exceeds_credits])
            last = F.post_pending_transfer if rng.random() < 0.5 else F.void_pending_transfer
            await ledger_.create_transfers([Transfer(id=next(next_id), pending_id=pid, flags=last, amount=0,
                                                     debit_account_id=0, credit_account_id=0, ledger=0, code=0)])
            await ledger_.create_transfers(plain(3))

    async def fast_worker(ledger_, size):
        for _ in range(3):
            await ledger_.create_transfers(plain(size))

    await asyncio.gather(exact_worker(ledger), exact_worker(other), fast_worker(ledger, FAST_TURN_ROWS_MIN),
                         fast_worker(other, FAST_TURN_ROWS_MIN), fast_worker(other, 20))
    accounts = await ledger.lookup_accounts([3, 4, 6])
    assert accounts[0].debits_posted + accounts[0].debits_pending <= accounts[0].credits_posted
    assert accounts[1].credits_posted + accounts[1].credits_pending <= accounts[1].debits_posted
    assert accounts[2].credits_posted == 0  # closed
    assert ledger.fast_batches + other.fast_batches > 0
    await audit_ok(pool)
    await journal_in_timestamp_order(pool)


_KILLED_CLIENT = textwrap.dedent("""
    import asyncio, hashlib, sys, time
    import asyncpg
    from ledger.service import _POST_FAST, _fast_records, FAST_TURN_ROWS_MIN
    from ledger.types import Transfer

    async def main():
        connection = await asyncpg.connect(sys.argv[1])
        records = _fast_records([Transfer(id=100 + i, debit_account_id=1, credit_account_id=2, amount=1, ledger=1,
                                          code=1) for i in range(FAST_TURN_ROWS_MIN)])
        connection.add_log_listener(lambda c, m: print("inserted", flush=True))
        await connection.fetchval(_POST_FAST, records, hashlib.sha256(records).digest(), time.time_ns())

    asyncio.run(main())
""")


async def test_client_killed_while_its_call_waits_for_the_head_leaves_an_intact_ledger(pool, db_url):
    ledger = await setup(pool, 0, 0)
    async with pool.acquire() as connection:
        outer = connection.transaction()
        await outer.start()
        await connection.execute("SELECT 1 FROM ledger_head FOR UPDATE")
        child = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, db_url], stdout=subprocess.PIPE,
                                 cwd=os.getcwd(), text=True)
        try:
            line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
            assert line == "inserted\n"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        # The server backend still waits for the head; the holder writes and commits.
        assert await ledger.create_transfers([tr(10, 1, 2, 5, flags=F.pending)], connection=connection) == [R.ok]
        await outer.commit()
    # The orphaned call overtaken by that commit (OCF02) rolls back when it gets the head.
    async with pool.acquire() as connection:
        for _ in range(100):
            waiting = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL ledger_post_transfers_fast%'")
            if not waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting == 0
        stored = await connection.fetchval("SELECT count(*) FROM ledger_transfers")
    assert stored in (1, 1 + FAST_TURN_ROWS_MIN)
    await audit_ok(pool)
    await journal_in_timestamp_order(pool)


async def test_old_server_path_takes_the_exact_rules(pool, monkeypatch):
    monkeypatch.setattr(service, "FAST_PATH_SERVER_MIN", 99)
    ledger = await setup(pool, 0, 0)
    large = [tr(100 + i, 1, 2, 1) for i in range(FAST_TURN_ROWS_MIN)]
    assert await ledger.create_transfers(large) == [R.ok] * len(large)
    async with pool.acquire() as connection, connection.transaction():
        assert await ledger.create_transfers([tr(1000 + i, 1, 2, 1) for i in range(service.FAST_NESTED_ROWS_MIN)],
                                             connection=connection) == [R.ok] * service.FAST_NESTED_ROWS_MIN
    assert (ledger.fast_batches, ledger.fast_declined) == (0, 0)
    async with pool.acquire() as connection:
        assert [r[0] for r in await connection.fetch("SELECT kind FROM ledger_journal ORDER BY sequence")] == [1, 2, 2]
    await audit_ok(pool)


async def test_many_nested_fast_calls_in_one_transaction_and_a_declined_one_writes_nothing(pool):
    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    size = service.FAST_NESTED_ROWS_MIN
    async with pool.acquire() as connection, connection.transaction():
        for call in range(70):  # more than the 64 subtransactions of a snapshot's cache
            batch = [tr(1000 * (call + 1) + i, 1, 2, 1) for i in range(size)]
            assert await ledger.create_transfers(batch, connection=connection) == [R.ok] * size
        # 2 holds 70 * size credits; one more than that, spread over a batch, is declined
        # by the fast path and by the exact rules for its last transfer only.
        spend = [tr(900_000 + i, 2, 3, 70) for i in range(size)] + [tr(999_999, 2, 3, 1)]
        assert await ledger.create_transfers(spend, connection=connection) == [R.ok] * size + [R.exceeds_credits]
    assert (ledger.fast_batches, ledger.fast_declined) == (70, 1)
    accounts = await ledger.lookup_accounts([1, 2, 3])
    assert [(a.debits_posted, a.credits_posted) for a in accounts] == [
        (70 * size, 0), (70 * size, 70 * size), (0, 70 * size)]
    await audit_ok(pool)
    await journal_in_timestamp_order(pool)


async def test_nested_fast_call_cancelled_by_a_timeout_leaves_the_callers_transaction_usable(pool):
    ledger = await setup(pool, 0, 0)
    size = service.FAST_NESTED_ROWS_MIN
    batch = [tr(100 + i, 1, 2, 1) for i in range(size)]
    async with pool.acquire() as holder, pool.acquire() as connection:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM ledger_head FOR UPDATE")
        async with connection.transaction():
            await connection.execute("SET LOCAL statement_timeout = '200ms'")
            with pytest.raises(asyncpg.exceptions.QueryCanceledError):
                await ledger.create_transfers(batch, connection=connection)
            await held.rollback()
            await connection.execute("SET LOCAL statement_timeout = 0")
            assert await ledger.create_transfers(batch, connection=connection) == [R.ok] * size
    assert ledger.fast_batches == 1
    [a1] = await ledger.lookup_accounts([1])
    assert a1.debits_posted == size
    await audit_ok(pool)


async def test_overtaken_call_whose_retry_meets_the_limit_gets_exact_results(pool):
    # A debit-limited account 2 holds 1,000 of credits. A large batch of 256 debits of 2
    # from it is inserted and waits for the head; the head's holder reserves 600 (pending)
    # and commits first. The batch, overtaken, is sent again: now its 512 cross the limit
    # (the pending 600 count), the exact rules pass the first 200 transfers only.
    ledger = await setup(pool, 0, AF.debits_must_not_exceed_credits, 0)
    assert await ledger.create_transfers([tr(1, 1, 2, 1_000)]) == [R.ok]
    large = [tr(100 + i, 2, 3, 2) for i in range(FAST_TURN_ROWS_MIN)]
    async with pool.acquire() as connection:
        outer = connection.transaction()
        await outer.start()
        await connection.execute("SELECT 1 FROM ledger_head FOR UPDATE")
        fast = asyncio.create_task(ledger.create_transfers(large))
        await waiting_for_the_head(pool)
        assert await ledger.create_transfers([tr(10, 2, 3, 600, flags=F.pending)], connection=connection) == [R.ok]
        await outer.commit()
    assert await fast == [R.ok] * 200 + [R.exceeds_credits] * (len(large) - 200)
    assert (ledger.fast_overtaken, ledger.fast_declined) == (1, 1)
    [limited] = await ledger.lookup_accounts([2])
    assert (limited.debits_pending, limited.debits_posted, limited.credits_posted) == (600, 400, 1_000)
    await audit_ok(pool)
    await journal_in_timestamp_order(pool)


@pytest.mark.parametrize("size, nested", [(1, False), (FAST_TURN_ROWS_MIN, False), (service.FAST_NESTED_ROWS_MIN, True)])
async def test_every_field_at_its_extreme_round_trips_through_each_fast_entry(pool, size, nested):
    big = 2**128 - 2  # the largest id allowed (int max is reserved)
    ledger = Ledger(pool)
    accounts = [Account(id=big, ledger=2**32 - 1, code=65535), Account(id=big - 1, ledger=2**32 - 1, code=1)]
    assert await ledger.create_accounts(accounts) == [0, 0]
    batch = [Transfer(id=big - 10 - i, debit_account_id=big, credit_account_id=big - 1, amount=2**40 + i,
                      user_data_128=big, user_data_64=2**64 - 1 - i, user_data_32=2**32 - 1, ledger=2**32 - 1,
                      code=65535) for i in range(size)]
    if nested:
        async with pool.acquire() as connection, connection.transaction():
            assert await ledger.create_transfers(batch, connection=connection) == [R.ok] * size
    else:
        assert await ledger.create_transfers(batch) == [R.ok] * size
    assert ledger.fast_batches == 1
    stored = await ledger.lookup_transfers([t.id for t in batch])
    assert [Transfer(**{f: getattr(t, f) for f in t.__struct_fields__ if f != "timestamp"}) for t in stored] == batch
    [debit] = await ledger.lookup_accounts([big])
    assert debit.debits_posted == sum(t.amount for t in batch)
    await audit_ok(pool)
