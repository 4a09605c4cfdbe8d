"""Daily close: one collection per card and bank; a bank decline denies the card until
the debt is cleared; the ledger nets the card account back to zero."""

from __future__ import annotations

from datetime import date

import pytest

from engine.errors import ConflictError
from engine.taps.collections import clear_debt, close_day, record_bank_answer
from ledger.service import Ledger

DAY = date(2026, 11, 30)
NEXT_DAY = date(2026, 12, 1)
CARD_ACCOUNT_ID = 5001


async def _ride(api, rider, prefix, minutes):
    await api.tap(rider.tap(f"{prefix}-in", minutes=minutes))
    _, answer = await api.tap(rider.tap(f"{prefix}-out", "exit", "tianfuguangchang",
                                        minutes=minutes + 20))
    return answer


async def test_close_day_sums_each_card_once_per_bank(api, rider, pool):
    await _ride(api, rider, "r1", 0)
    await _ride(api, rider, "r2", 60)
    grouped = await close_day(pool, DAY, current_day=NEXT_DAY)
    [collection] = grouped["ICBC"]
    assert (collection.card_token, collection.amount_minor, collection.tap_count) == (
        rider.token, 600, 2)
    assert await close_day(pool, DAY, current_day=NEXT_DAY) == grouped  # closing again: same
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM transit_collections") == 1


async def test_an_open_day_cannot_be_closed(pool):
    with pytest.raises(ConflictError, match="not closed yet"):
        await close_day(pool, DAY, current_day=DAY)


async def test_declined_collection_denies_the_card_until_cleared(api, rider, pool):
    ledger = Ledger(pool)
    await _ride(api, rider, "r1", 0)
    await close_day(pool, DAY, current_day=NEXT_DAY)
    assert await record_bank_answer(pool, ledger, rider.token, DAY, collected=False) == "declined"
    _, answer = await api.tap(rider.tap("r2-in", minutes=120))
    assert answer["reason"] == "unpaid_debt"
    with pytest.raises(ConflictError, match="is declined, cannot become collected"):
        await record_bank_answer(pool, ledger, rider.token, DAY, collected=True)
    assert await clear_debt(pool, ledger, rider.token, DAY) == "cleared"
    assert await api.balance(CARD_ACCOUNT_ID) == (300, 300)
    _, answer = await api.tap(rider.tap("r3-in", minutes=180))
    assert answer["reason"] == "approved"


async def test_collected_collection_credits_the_card(api, rider, pool):
    ledger = Ledger(pool)
    await _ride(api, rider, "r1", 0)
    await close_day(pool, DAY, current_day=NEXT_DAY)
    assert await record_bank_answer(pool, ledger, rider.token, DAY, collected=True) == "collected"
    assert await api.balance(CARD_ACCOUNT_ID) == (300, 300)
    assert await api.balance(api.bank_account_id) == (300, 0)


async def test_missing_exit_is_charged_at_close_once(api, rider, pool, shared_data):
    from datetime import timedelta

    from engine.fares.config import load_engine
    from engine.taps.collections import charge_missing_exits
    from engine.taps.posting import LedgerPosting
    from engine.taps.pricing import FarePricing
    from tapkit import T0

    fares = load_engine(shared_data=shared_data)
    pricing, posting = FarePricing(fares), LedgerPosting(Ledger(pool))
    await api.tap(rider.tap("m-in"))
    assert await charge_missing_exits(pool, posting, pricing, T0 + timedelta(hours=1)) == 0
    assert await charge_missing_exits(pool, posting, pricing, T0 + timedelta(hours=5)) == 1
    assert await charge_missing_exits(pool, posting, pricing, T0 + timedelta(hours=6)) == 0
    max_fare_minor = fares.networks["metro"].max_fare_minor
    assert max_fare_minor > 0
    [collection] = (await close_day(pool, DAY, current_day=NEXT_DAY))["ICBC"]
    assert (collection.amount_minor, collection.tap_count) == (max_fare_minor, 1)
    assert await api.balance(CARD_ACCOUNT_ID) == (max_fare_minor, 0)
    # The next tap starts afresh: the missing exit is not charged a second time.
    _, answer = await api.tap(rider.tap("n-in", minutes=600))
    assert (answer["reason"], answer["fare_minor"]) == ("approved", 0)
