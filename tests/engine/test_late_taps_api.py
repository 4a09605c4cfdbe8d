"""Late taps through the tap API: a card's taps arriving out of time order are charged,
in total, what time order charges; a late tap posts the difference (a refund operator ->
card when the day's charges went down), once per tap_id.

Fares (Chengdu Line 1): Weijianian -> Tianfu Square 3 yuan; the network maximum (a
missing exit, an exit without entry) 8 yuan.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.fares.config import load_engine
from engine.taps.collections import charge_missing_exits, close_day
from engine.taps.posting import LedgerPosting
from engine.taps.pricing import FarePricing
from ledger.service import Ledger
from tapkit import T0

DAY, NEXT_DAY = date(2026, 11, 30), date(2026, 12, 1)
CARD_ACCOUNT_ID = 5001


def two_rides(rider):
    """Weijianian -> Tianfu Square and back: 3 + 3 yuan in time order."""
    return [rider.tap("r1-in", minutes=0), rider.tap("r1-out", "exit", "tianfuguangchang", minutes=20),
            rider.tap("r2-in", "entry", "tianfuguangchang", minutes=60),
            rider.tap("r2-out", "exit", "weijianian", minutes=80)]


async def _collection(pool) -> int:
    [collection] = (await close_day(pool, DAY, current_day=NEXT_DAY))["ICBC"]
    return collection.amount_minor


async def test_in_time_order(api, rider, pool):
    answers = [(await api.tap(tap))[1] for tap in two_rides(rider)]
    assert [(a["fare_minor"], a["refund_minor"], a["day_total_minor"]) for a in answers] == [
        (0, 0, 0), (300, 0, 300), (0, 0, 300), (300, 0, 600)]
    assert await api.balance(CARD_ACCOUNT_ID) == (600, 0)
    assert await _collection(pool) == 600


@pytest.mark.parametrize("api", [64, 1], ids=["batched", "unbatched"], indirect=True)
async def test_exits_before_entries_charge_the_same_in_total(api, rider, pool):
    r1_in, r1_out, r2_in, r2_out = two_rides(rider)
    answers = [(await api.tap(tap))[1] for tap in (r1_out, r1_in, r2_out, r2_in)]
    # Exit without entry: the maximum fare; its late entry refunds 8 - 3 yuan.
    assert [(a["decision"], a["fare_minor"], a["refund_minor"], a["day_total_minor"]) for a in answers] == [
        ("approved", 800, 0, 800), ("approved", 0, 500, 300), ("approved", 800, 0, 1100),
        ("approved", 0, 500, 600)]
    assert await api.balance(CARD_ACCOUNT_ID) == (1600, 1000)          # net 6 yuan
    assert await api.balance(api.operator_account_id) == (1000, 1600)
    _, again = await api.tap(r1_in)                                    # idempotent on tap_id
    assert (again["replayed"], again["refund_minor"]) == (True, 500)
    assert await api.balance(CARD_ACCOUNT_ID) == (1600, 1000)
    _, body = await api.call("GET", f"/v1/cards/{rider.token}/journeys", device="admin-1")
    assert [(j["kind"], j["entry"]["tap_id"], j["exit"]["tap_id"]) for j in body["journeys"]] == [
        ("complete", "r2-in", "r2-out"), ("complete", "r1-in", "r1-out")]
    assert sum(j["fare_minor"] - j["refund_minor"] for j in body["journeys"]) == 600
    assert await _collection(pool) == 600


async def test_late_exit_after_the_close_charged_its_missing_exit(api, rider, pool, shared_data):
    pricing, posting = FarePricing(load_engine(shared_data=shared_data)), LedgerPosting(Ledger(pool))
    r1_in, r1_out, _, _ = two_rides(rider)
    await api.tap(r1_in)
    assert await charge_missing_exits(pool, posting, pricing, T0 + timedelta(hours=5)) == 1
    assert await api.balance(CARD_ACCOUNT_ID) == (800, 0)
    _, answer = await api.tap(r1_out)
    assert (answer["fare_minor"], answer["refund_minor"], answer["day_total_minor"]) == (0, 500, 300)
    assert await api.balance(CARD_ACCOUNT_ID) == (800, 500)
    _, body = await api.call("GET", f"/v1/cards/{rider.token}/journeys", device="admin-1")
    assert [(j["kind"], j["exit"]["tap_id"], j["fare_minor"], j["refund_minor"])
            for j in body["journeys"]] == [("complete", "r1-out", 800, 500)]
    assert await _collection(pool) == 300


@pytest.mark.parametrize("order", ["in time order", "reversed", "exits first"])
async def test_a_capped_day_charges_the_cap_in_any_arrival_order(api, rider, pool, order):
    """Three whole-line rides (8 yuan each) cap the day at 20 yuan however they arrive."""
    rides = [rider.tap(f"c{n}-{direction}", direction, station, minutes=90 * n + (60 if direction == "exit" else 0))
             for n in range(3) for direction, station in (("entry", "weijianian"), ("exit", "kexuecheng"))]
    arrival = {"in time order": rides, "reversed": rides[::-1], "exits first": rides[1::2] + rides[0::2]}[order]
    answers = [(await api.tap(tap))[1] for tap in arrival]
    assert all(a["decision"] == "approved" and a["day_total_minor"] <= 2000 for a in answers)
    assert answers[-1]["day_total_minor"] == 2000
    charged = sum(a["fare_minor"] for a in answers) - sum(a["refund_minor"] for a in answers)
    debits, credits = await api.balance(CARD_ACCOUNT_ID)
    assert charged == debits - credits == 2000
    assert await _collection(pool) == 2000
