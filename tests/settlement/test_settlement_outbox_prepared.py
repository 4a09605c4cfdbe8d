"""Payouts prepared before their transaction (render and validate with no lock held), then
written and posted in it: exact rows and balances, a resumed part, a race and a refusal."""

import pytest

from engine.settlement.errors import PayoutRefusedError
from engine.settlement.outbox import (Payout, create_payout_transfers, post_payouts, prepare_payouts,
                                      write_instructions)
from ledger.ids import new_id
from ledger.results import CreateTransferResult as R
from settlement_world import make_world


def _payouts(world, *amounts_minor):
    return [Payout(new_id(), world.payer_account, world.cards[n % 2], amount, "ICBC", f"Person {n}",
                   f"622202000000{n:04d}", "Subsidy Fund") for n, amount in enumerate(amounts_minor)]


async def _post(pool, world, prepared):
    async with pool.acquire() as connection, connection.transaction():
        await write_instructions(connection, prepared)
        return await create_payout_transfers(connection, world.ledger, prepared)


async def _state(pool, world):
    accounts = await world.ledger.lookup_accounts([world.payer_account, *world.cards])
    async with pool.acquire() as connection:
        return ([(a.debits_posted, a.credits_posted) for a in accounts],
                await connection.fetchval("SELECT count(*) FROM settlement_outbox"),
                await connection.fetchval("SELECT count(*) FROM settlement_payments"))


async def test_prepared_outside_the_transaction_then_posted(pool):
    world = await make_world(pool, fund_minor=10_000)
    payouts = _payouts(world, 1_200, 3_400)
    async with pool.acquire() as connection:
        prepared = await prepare_payouts(connection, world.ledger, payouts, new=True)
        assert not connection.is_in_transaction()
    assert prepared.known == frozenset() and [len(i.payouts) for i in prepared.instructions] == [2]
    assert await _post(pool, world, prepared) == [R.ok, R.ok]
    assert await _state(pool, world) == ([(4_600, 10_000), (0, 1_200), (0, 3_400)], 1, 2)
    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT transfer_id, amount_minor, message_id FROM settlement_payments"
                                      " ORDER BY amount_minor")
    assert [(int.from_bytes(r[0], "big"), r[1]) for r in rows] == [(p.transfer_id, p.amount_minor) for p in payouts]
    assert {r[2] for r in rows} == {prepared.instructions[0].message.message_id}


async def test_a_resumed_part_prepares_only_the_payouts_not_posted(pool):
    world = await make_world(pool, fund_minor=10_000)
    payouts = _payouts(world, 1_200, 3_400)
    async with pool.acquire() as connection, connection.transaction():
        await post_payouts(connection, world.ledger, payouts[:1])
    async with pool.acquire() as connection:
        prepared = await prepare_payouts(connection, world.ledger, payouts)
    assert prepared.known == {payouts[0].transfer_id}
    assert [p.transfer_id for i in prepared.instructions for p in i.payouts] == [payouts[1].transfer_id]
    assert await _post(pool, world, prepared) == [R.exists, R.ok]
    assert await _state(pool, world) == ([(4_600, 10_000), (0, 1_200), (0, 3_400)], 2, 2)


async def test_a_payout_posted_by_another_writer_since_it_was_prepared_is_refused(pool):
    world = await make_world(pool, fund_minor=10_000)
    payouts = _payouts(world, 1_200, 3_400)
    async with pool.acquire() as connection:
        prepared = await prepare_payouts(connection, world.ledger, payouts, new=True)
        async with connection.transaction():
            await post_payouts(connection, world.ledger, payouts)
    before = await _state(pool, world)
    with pytest.raises(PayoutRefusedError, match="posted by another writer meanwhile"):
        await _post(pool, world, prepared)
    assert await _state(pool, world) == before == ([(4_600, 10_000), (0, 1_200), (0, 3_400)], 1, 2)


async def test_a_payout_the_ledger_refuses_takes_its_instructions_back(pool):
    world = await make_world(pool, fund_minor=1_000)
    async with pool.acquire() as connection:
        prepared = await prepare_payouts(connection, world.ledger, _payouts(world, 600, 600), new=True)
    with pytest.raises(PayoutRefusedError, match="exceeds_credits") as refused:
        await _post(pool, world, prepared)
    assert refused.value.results == [R.ok, R.exceeds_credits]
    assert await _state(pool, world) == ([(0, 1_000), (0, 0), (0, 0)], 0, 0)
