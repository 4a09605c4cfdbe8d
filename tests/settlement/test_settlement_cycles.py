"""Settlement cycles on a real PostgreSQL: positions by hand, the state machine, empty
cycles, settling right after closing, caps, and close concurrent with committing transfers."""

import asyncio

import pytest

from engine.settlement import registry
from engine.settlement.cycles import Cycles
from engine.settlement.errors import CycleStateError, ParticipantError, UnknownParticipantError
from engine.settlement.outbox import Payout, apply_returns, apply_statuses, post_payouts
from adapters.iso20022 import ids, pacs002, pacs004
from ledger.ids import new_id
from settlement_world import make_world


async def _payouts(pool, world, amounts):
    payouts = [Payout(new_id(), world.payer_account, world.cards[i % len(world.cards)], amount, "ICBC",
                      f"Person {i}", f"6222020000{i:06d}", "Subsidy Fund") for i, amount in enumerate(amounts)]
    async with pool.acquire() as connection, connection.transaction():
        await post_payouts(connection, world.ledger, payouts)
    return payouts


async def test_positions_by_hand_fares_payouts_and_a_return(pool):
    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    await world.fares(pool, [200, 300, 450])                     # ICBC owes BOC 950
    payouts = await _payouts(pool, world, [10_000, 5_000])       # CCB owes ICBC 15,000
    async with pool.acquire() as connection, connection.transaction():
        await apply_statuses(connection, world.ledger, "ICBC",
                             [pacs002.TransactionStatus(ids.end_to_end_id(p.transfer_id), "ACSC") for p in payouts])
        await apply_returns(connection, world.ledger, "ICBC", [pacs004.PaymentReturn(
            "R1", "M", ids.end_to_end_id(payouts[1].transfer_id), 5_000, "CNY", "AC04")])  # ICBC owes CCB 5,000
    closed = await cycles.close()
    assert closed.state == "CLOSED" and closed.transfer_count == 7 and closed.unattributed_count == 0
    positions = {p.bank_code: (p.debit_minor, p.credit_minor, p.net_minor) for p in await cycles.positions(1)}
    assert positions == {"BOC": (0, 950, 950), "CCB": (15_000, 5_000, -10_000), "ICBC": (5_950, 15_000, 9_050)}
    assert sum(p[2] for p in positions.values()) == 0
    issued = await cycles.issue(1)
    assert issued.state == "PENDING_SETTLEMENT"
    assert (await cycles.confirm(1, "BOC")).state == "PENDING_SETTLEMENT"
    assert (await cycles.confirm(1, "BOC")).state == "PENDING_SETTLEMENT"  # a repeat changes nothing
    await cycles.confirm(1, "CCB")
    settled = await cycles.confirm(1, "ICBC")
    assert settled.state == "SETTLED" and settled.settled_at is not None
    # The settlement moved each net through the clearing account, which ends at zero.
    (clearing,) = await world.ledger.lookup_accounts([registry.CLEARING_ACCOUNT_ID])
    assert (clearing.debits_posted, clearing.credits_posted) == (10_000, 10_000)
    assert [h.to_state for h in await cycles.history(1)] == ["OPEN", "CLOSED", "PENDING_SETTLEMENT", "SETTLED"]
    # The settlement postings are not in the next cycle's positions.
    nxt = await cycles.close()
    assert nxt.cycle_id == 2 and nxt.transfer_count == 0 and nxt.unattributed_count == 0
    assert {p.net_minor for p in await cycles.positions(2)} == {0}


async def test_an_empty_cycle_goes_all_the_way_to_settled(pool):
    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    await cycles.close()
    first_positions = await cycles.positions(1)
    assert [p.net_minor for p in first_positions] == [0, 0, 0]
    closed = await cycles.close()
    assert closed.transfer_count == 0
    settled = await cycles.settle(closed.cycle_id)
    assert settled.state == "SETTLED"
    assert [h.to_state for h in await cycles.history(closed.cycle_id)] == [
        "OPEN", "CLOSED", "PENDING_SETTLEMENT", "SETTLED"]


async def test_settling_right_after_closing_works(pool):
    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    await world.fares(pool, [700])
    closed = await cycles.close()
    settled = await cycles.settle(closed.cycle_id)
    assert settled.state == "SETTLED"
    assert {p.bank_code: (p.net_minor, p.confirmed) for p in await cycles.positions(1)} == {
        "BOC": (700, True), "CCB": (0, True), "ICBC": (-700, True)}


@pytest.mark.parametrize("state_moves, wanted, message", [
    ((), "confirm", "cycle 1 is CLOSED; only a PENDING_SETTLEMENT cycle is confirmed"),
    (("settle",), "issue", "cycle 1 is SETTLED; it cannot become PENDING_SETTLEMENT"),
    (("settle",), "settle", "cycle 1 is SETTLED; it cannot become SETTLED"),
])
async def test_illegal_transitions_are_refused_naming_the_states(pool, state_moves, wanted, message):
    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    await world.fares(pool, [100])
    await cycles.close()
    for move in state_moves:
        await getattr(cycles, move)(1)
    call = {"confirm": lambda: cycles.confirm(1, "BOC"), "issue": lambda: cycles.issue(1),
            "settle": lambda: cycles.settle(1)}[wanted]
    with pytest.raises(CycleStateError, match=message):
        await call()


async def test_open_cycle_cannot_be_settled_and_unknown_cycle_is_named(pool):
    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    with pytest.raises(CycleStateError, match="cycle 1 is OPEN; it cannot become PENDING_SETTLEMENT"):
        await cycles.issue(1)
    with pytest.raises(UnknownParticipantError, match="cycle 9: no such cycle"):
        await cycles.show(9)


async def test_net_debit_cap_alerts(pool):
    world = await make_world(pool, caps={"ICBC": 1_000})
    cycles = Cycles(pool, world.ledger)
    await world.fares(pool, [850])
    alerts = await cycles.provisional_alerts()
    assert [(a.bank_code, a.kind, a.net_minor) for a in alerts] == [("ICBC", "approaching", -850)]
    await world.fares(pool, [150])
    assert [a.kind for a in await cycles.provisional_alerts()] == ["exceeded"]
    await cycles.close()
    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT bank_code, kind, net_minor, cap_minor FROM settlement_alerts")
    assert [tuple(r) for r in rows] == [("ICBC", "exceeded", -1_000, 1_000)]


async def test_fare_collection_requests_per_card(pool):
    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    await world.fares(pool, [200, 300], card_index=0)
    await world.fares(pool, [400], card_index=1)
    await cycles.close()
    collections = await cycles.collections(1, "ICBC")
    assert sorted((c.account_id, c.amount_minor, c.fares) for c in collections) == sorted(
        [(world.cards[0], 500, 2), (world.cards[1], 400, 1)])
    assert await cycles.collections(1, "BOC") == []


async def test_participant_errors_name_the_field(pool):
    world = await make_world(pool)
    with pytest.raises(ParticipantError, match="bank_code 'ICBC': already registered"):
        await registry.add_bank(pool, world.ledger, "ICBC", "again")
    with pytest.raises(ParticipantError, match="bank_code 'icbc'"):
        await registry.add_bank(pool, world.ledger, "icbc", "lower")
    with pytest.raises(UnknownParticipantError, match="bank_code 'NOPE'"):
        await registry.add_operator(pool, world.ledger, "bus", "NOPE")
    async with pool.acquire() as connection:
        with pytest.raises(ParticipantError, match="already attributed to ICBC as card"):
            await registry.attribute_accounts(connection, [(world.cards[0], "BOC", "card")])


async def test_close_concurrent_with_commits_puts_every_transfer_in_exactly_one_cycle(pool):
    world = await make_world(pool, card_count=4)
    cycles = Cycles(pool, world.ledger)
    stop = asyncio.Event()
    posted: list[int] = []

    async def tap_path(card_index):
        while not stop.is_set():
            transfers = await world.fares(pool, [1, 2, 3], card_index=card_index)
            posted.extend(t.id for t in transfers)

    async def closer():
        for _ in range(6):
            await asyncio.sleep(0.02)
            await cycles.close()
        stop.set()

    await asyncio.gather(closer(), *(tap_path(i) for i in range(4)))
    final = await cycles.close()
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT c.cycle_id, count(*) AS n, sum(t.amount) AS amount FROM ledger_transfers t"
            " JOIN settlement_cycles c ON t.timestamp > c.timestamp_after AND t.timestamp <= c.timestamp_last"
            " WHERE t.code = 210 GROUP BY c.cycle_id")
        per_transfer = await connection.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM ledger_transfers t JOIN settlement_cycles c"
            " ON t.timestamp > c.timestamp_after AND t.timestamp <= c.timestamp_last GROUP BY t.id) x")
    assert per_transfer == 1
    assert sum(r["n"] for r in rows) == len(posted) > 0
    fares_total = sum(r["amount"] for r in rows)
    boc_total = 0
    for cycle_id in range(1, final.cycle_id + 1):
        positions = await cycles.positions(cycle_id)
        assert sum(p.net_minor for p in positions) == 0
        boc_total += next(p.net_minor for p in positions if p.bank_code == "BOC")
    assert boc_total == fares_total
    (operator,) = await world.ledger.lookup_accounts([world.operator_account])
    assert operator.credits_posted == fares_total


async def test_a_scheduled_close_happens_once_across_processes(pool):
    import datetime as dt

    world = await make_world(pool)
    cycles = Cycles(pool, world.ledger)
    due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    first, second = await asyncio.gather(cycles.close_and_issue(scheduled_at=due),
                                         cycles.close_and_issue(scheduled_at=due))
    assert sorted([first is None, second is None]) == [False, True]
    assert await cycles.close_and_issue(scheduled_at=due) is None
    assert [c.state for c in await cycles.list()] == ["OPEN", "PENDING_SETTLEMENT"]


async def test_attributing_accounts_to_unknown_banks_names_them(pool):
    async with pool.acquire() as connection, connection.transaction():
        with pytest.raises(registry.UnknownParticipantError) as refused:
            await registry.attribute_accounts(connection, [(1, "PSBC", "card"), (2, "BOC", "card"), (3, "PSBC", "card")])
    assert str(refused.value) == "bank_code 'BOC', 'PSBC': no such bank"
