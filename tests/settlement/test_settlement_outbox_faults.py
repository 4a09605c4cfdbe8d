"""The outbox against simbank over real loopback HTTP with injected faults: timeouts, 5xx,
lost acknowledgements, rejections, duplicate and out-of-order pacs.002, and a crash of the
engine between posting and delivery (the dispatcher stopped and restarted from the outbox).
Every payout has its effect at the bank exactly once, the ledger and the bank's statement
reconcile with no differences, and the closed cycle's positions sum to zero."""

import asyncio
import datetime as dt
import random

import pytest

from adapters.delivery import HttpDelivery, RetryPolicy
from adapters.iso20022 import camt053, ids, pacs002, pacs004
from adapters.reconcile import reconcile
from adapters.simbank import Faults, SimBank
from engine.settlement.cycles import Cycles
from engine.settlement.outbox import (Dispatcher, HttpTransport, Payout, apply_returns, apply_statuses,
                                      expected_statement, post_payouts)
from ledger.ids import new_id
from settlement_world import make_world

KEY = bytes(range(32))
PAYOUTS_PER_BATCH = 6
BATCHES = 8


def _transport(url, timeout_s=0.5):
    policy = RetryPolicy(attempts_max=2, timeout_s=timeout_s, backoff_initial_s=0.01, backoff_max_s=0.02)
    return HttpTransport(HttpDelivery(url, key_id="ONECARD", key=KEY, policy=policy))


async def _drain(dispatcher, pool, rounds_max=400):
    for _ in range(rounds_max):
        await dispatcher.run_once()
        async with pool.acquire() as connection:
            pending = await connection.fetchval("SELECT count(*) FROM settlement_outbox WHERE state = 'pending'")
        if not pending:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("outbox not drained")


@pytest.fixture
async def bank():
    faults = Faults(error_rate=0.25, lost_ack_rate=0.25, timeout_rate=0.15, hang_s=1.0, duplicate_rate=0.4,
                    out_of_order_rate=0.4, reject_rate=0.15, seed=11)
    simbank = SimBank("ICBC", faults=faults, keys={"ONECARD": KEY})
    await simbank.start()
    yield simbank
    await simbank.stop()


async def test_every_payout_takes_effect_exactly_once_and_reconciles(pool, bank):
    world = await make_world(pool, card_count=3, delivery={"ICBC": ("push", bank.url)})
    payouts = []
    for batch in range(BATCHES):
        chunk = [Payout(new_id(), world.payer_account, world.cards[n % 3], 1_000 + batch * 10 + n, "ICBC",
                        f"Person {batch}-{n}", f"62220200{batch:02d}{n:06d}", "Subsidy Fund")
                 for n in range(PAYOUTS_PER_BATCH)]
        async with pool.acquire() as connection, connection.transaction():
            await post_payouts(connection, world.ledger, chunk)
        payouts += chunk
    # Resending a batch after a crash posts and sends nothing new.
    async with pool.acquire() as connection, connection.transaction():
        assert {r.name for r in await post_payouts(connection, world.ledger, payouts[:3])} == {"exists"}

    # The engine crashes mid-delivery: a dispatcher claims messages and dies before recording
    # anything; its claims expire and a fresh dispatcher delivers everything from the outbox.
    first = Dispatcher(pool, world.ledger, {"ICBC": _transport(bank.url)}, lease_s=0.3,
                       backoff_initial_s=0.01, backoff_max_s=0.05, rng=random.Random(1))
    running = asyncio.create_task(first.run_forever(interval_s=0.01))
    await asyncio.sleep(0.15)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    second = Dispatcher(pool, world.ledger, {"ICBC": _transport(bank.url)}, lease_s=0.3,
                        backoff_initial_s=0.01, backoff_max_s=0.05, rng=random.Random(2))
    await asyncio.sleep(0.35)
    await _drain(second, pool)

    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT end_to_end_id, status, amount_minor, reversal_id FROM settlement_payments")
        outbox = await connection.fetch("SELECT state FROM settlement_outbox")
    assert {r["state"] for r in outbox} == {"delivered"} and len(outbox) == BATCHES
    status = {r["end_to_end_id"]: r for r in rows}
    assert len(status) == len(payouts)
    accepted = [p for p in payouts if status[ids.end_to_end_id(p.transfer_id)]["status"] == "ACSC"]
    rejected = [p for p in payouts if status[ids.end_to_end_id(p.transfer_id)]["status"] == "RJCT"]
    assert len(accepted) + len(rejected) == len(payouts) and rejected and accepted
    for payout in payouts:
        credit = bank.credited(ids.end_to_end_id(payout.transfer_id))
        assert (credit is not None) == (payout in accepted)
        assert (status[ids.end_to_end_id(payout.transfer_id)]["reversal_id"] is not None) == (payout in rejected)
    for n in range(3):
        expected = sum(p.amount_minor for p in accepted if p.card_account_id == world.cards[n])
        assert sum(a.balance_minor for number, a in bank.accounts.items()
                   if any(p.creditor_account == number and p.card_account_id == world.cards[n] for p in payouts)) \
            == expected

    # The bank posts every status report again (duplicates, out of order): nothing changes.
    for message_id in {r["message_id"] for r in await _messages(pool)}:
        report = pacs002.parse(bank.status_report(message_id))
        async with pool.acquire() as connection, connection.transaction():
            applied = await apply_statuses(connection, world.ledger, "ICBC", report.transactions)
        assert not (applied.accepted or applied.rejected or applied.conflicts or applied.unknown)

    # The bank returns one accepted payment (pacs.004), applied twice: one reversal.
    returned = accepted[0]
    bank.return_payment(ids.end_to_end_id(returned.transfer_id), "AC04")
    message = pacs004.parse(bank.next_return())
    for _ in range(2):
        async with pool.acquire() as connection, connection.transaction():
            await apply_returns(connection, world.ledger, "ICBC", message.returns)

    # Ledger and the bank's statement reconcile with no differences.
    statement = camt053.parse(bank.statement(dt.datetime.now(dt.timezone.utc).date()))
    async with pool.acquire() as connection:
        engine_side = await expected_statement(connection, "ICBC")
    report = reconcile(engine_side, statement.entries)
    assert report.clean and len(report.matched) == len(accepted) + 1

    # Card balances in the ledger: credited every payout, debited every reversal.
    cards = {a.id: a for a in await world.ledger.lookup_accounts(world.cards)}
    for n in range(3):
        mine = [p for p in payouts if p.card_account_id == world.cards[n]]
        reversed_minor = sum(p.amount_minor for p in mine if p in rejected or p is returned)
        assert (cards[world.cards[n]].credits_posted, cards[world.cards[n]].debits_posted) == (
            sum(p.amount_minor for p in mine), reversed_minor)

    cycles = Cycles(pool, world.ledger)
    await cycles.close()
    positions = {p.bank_code: p.net_minor for p in await cycles.positions(1)}
    net_paid = sum(p.amount_minor for p in accepted) - returned.amount_minor
    assert positions == {"BOC": 0, "CCB": -net_paid, "ICBC": net_paid}
    assert sum(positions.values()) == 0


async def _messages(pool):
    async with pool.acquire() as connection:
        return await connection.fetch("SELECT message_id FROM settlement_outbox WHERE kind = 'payout'")


async def test_a_refused_message_is_failed_not_retried(pool, bank):
    world = await make_world(pool, delivery={"ICBC": ("push", bank.url)})
    async with pool.acquire() as connection, connection.transaction():
        await post_payouts(connection, world.ledger, [Payout(new_id(), world.payer_account, world.cards[0], 100,
                                                             "ICBC", "P", "6222", "Fund")])
    wrong_key = HttpTransport(HttpDelivery(bank.url, key_id="ONECARD", key=b"wrong" * 8,
                                           policy=RetryPolicy(attempts_max=1, timeout_s=0.5)))
    dispatcher = Dispatcher(pool, world.ledger, {"ICBC": wrong_key}, backoff_initial_s=0.01)
    assert await dispatcher.run_once() == 0
    async with pool.acquire() as connection:
        row = await connection.fetchrow("SELECT state, attempts, last_error FROM settlement_outbox")
    assert (row["state"], row["attempts"]) == ("failed", 1)
    assert "HTTP 401" in row["last_error"]


async def test_file_drop_delivery_is_atomic_and_repeatable(pool, tmp_path):
    from adapters.delivery import FileDrop
    from engine.settlement.outbox import FileTransport

    folder = tmp_path / "sftp" / "ICBC"
    world = await make_world(pool, delivery={"ICBC": ("file", str(folder))})
    async with pool.acquire() as connection, connection.transaction():
        await post_payouts(connection, world.ledger, [Payout(new_id(), world.payer_account, world.cards[0], 100,
                                                             "ICBC", "P", "6222", "Fund")])
    transport = FileTransport(FileDrop(folder))
    dispatcher = Dispatcher(pool, world.ledger, {"ICBC": transport})
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0
    async with pool.acquire() as connection:
        message_id, xml, state = await connection.fetchrow("SELECT message_id, xml, state FROM settlement_outbox")
    assert state == "delivered"
    assert [p.name for p in folder.iterdir()] == [f"{message_id}.xml"]
    assert (folder / f"{message_id}.xml").read_bytes() == xml
    # A second delivery of the same message (e.g. after a lost database write) is a no-op.
    assert await transport.send(message_id, xml) == b""


async def test_a_refused_payout_raises_after_its_instruction_was_written(pool):
    from engine.settlement.errors import PayoutRefusedError

    world = await make_world(pool, fund_minor=1_000)
    payout = Payout(new_id(), world.payer_account, world.cards[0], 600, "ICBC", "P", "6222", "Fund")
    async with pool.acquire() as connection, connection.transaction():
        assert [r.name for r in await post_payouts(connection, world.ledger, [payout])] == ["ok"]
    # Resent: the ledger answers exists, nothing is written a second time.
    async with pool.acquire() as connection, connection.transaction():
        assert [r.name for r in await post_payouts(connection, world.ledger, [payout])] == ["exists"]
    # Resent by a caller that wrongly claims the id is new: refused, nothing written.
    with pytest.raises(PayoutRefusedError, match="another writer"):
        async with pool.acquire() as connection, connection.transaction():
            await post_payouts(connection, world.ledger, [payout], new=True)
    # Over the funds: the ledger refuses after the instruction was written; rolled back.
    with pytest.raises(PayoutRefusedError, match="exceeds_credits") as refused:
        async with pool.acquire() as connection, connection.transaction():
            await post_payouts(connection, world.ledger, [Payout(new_id(), world.payer_account, world.cards[0], 600,
                                                                 "ICBC", "P", "6222", "Fund")])
    assert [r.name for r in refused.value.results] == ["exceeds_credits"]
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM settlement_payments") == 1
        assert await connection.fetchval("SELECT count(*) FROM settlement_outbox") == 1
