"""Daily collection amounts per card, grouped by issuing bank."""

from __future__ import annotations

from datetime import date

import pytest

from engine.fares.aggregation import AggregationError, Collection, PricedTap, collections_by_bank

DAY = date(2026, 3, 2)


def priced(tap_id, card, bank, fare, day=DAY):
    return PricedTap(tap_id, card, bank, day, fare)


def test_one_amount_per_card_grouped_by_bank():
    taps = [priced("1", "c1", "ICBC", 300), priced("2", "c2", "BOC", 800), priced("3", "c1", "ICBC", 0),
            priced("4", "c1", "ICBC", 500), priced("5", "c3", "ICBC", 200), priced("2", "c2", "BOC", 800),
            priced("6", "c4", "BOC", 0)]
    assert collections_by_bank(taps, DAY) == {
        "BOC": (Collection("BOC", "c2", DAY, 800, 1),),
        "ICBC": (Collection("ICBC", "c1", DAY, 800, 3), Collection("ICBC", "c3", DAY, 200, 1)),
    }


def test_late_tap_refund_lowers_the_collection():
    taps = [priced("1", "c1", "ICBC", 800), PricedTap("2", "c1", "ICBC", DAY, 0, refund_minor=300)]
    assert collections_by_bank(taps, DAY) == {"ICBC": (Collection("ICBC", "c1", DAY, 500, 2),)}


def test_empty_day():
    assert collections_by_bank([], DAY) == {}


@pytest.mark.parametrize(
    ("taps", "message"),
    [
        ([priced("1", "c1", "ICBC", 300, date(2026, 3, 1))], "is not 2026-03-02"),
        ([priced("1", "c1", "ICBC", -1)], "negative"),
        ([priced("1", "c1", "ICBC", 300), PricedTap("2", "c1", "ICBC", DAY, 0, refund_minor=301)],
         "refunds exceed fares by 1"),
        ([priced("1", "c1", "ICBC", 300), priced("1", "c1", "ICBC", 301)], "repeated with different content"),
        ([priced("1", "c1", "ICBC", 300), priced("2", "c1", "BOC", 300)], "issued by ICBC and BOC"),
        ([priced("1", "c1", "ICBC", 2**63 - 1), priced("2", "c1", "ICBC", 1)], "overflows"),
    ],
)
def test_contradictions_are_refused(taps, message):
    with pytest.raises(AggregationError, match=message):
        collections_by_bank(taps, DAY)
