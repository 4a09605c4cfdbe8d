"""Daily aggregation: after a transit day closes, one collection amount per card, grouped
by the card's issuing bank (TfL's model: the bank is asked once a day per card).

Pure: the caller passes the day's priced taps (from its store) and sends each bank its
list. Cards whose day totals 0 (free riders, capped to nothing) get no collection.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import msgspec

from engine.fares.errors import UnpriceableError
from engine.fares.money import AMOUNT_MINOR_MAX


class AggregationError(UnpriceableError):
    """The day's taps contradict each other (see :func:`collections_by_bank`)."""


class PricedTap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One priced tap as stored by the tap API (``fare_minor`` after caps; ``refund_minor``
    what a late tap refunded when re-pricing its day lowered the day's charges)."""

    tap_id: str
    card_token: str
    issuing_bank_id: str
    transit_date: date
    fare_minor: int
    refund_minor: int = 0


class Collection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What one issuing bank is asked to collect from one card for one transit day."""

    issuing_bank_id: str
    card_token: str
    transit_date: date
    amount_minor: int
    tap_count: int


def collections_by_bank(taps: Iterable[PricedTap], day: date) -> dict[str, tuple[Collection, ...]]:
    """Sum the day's fares per card and group the cards by issuing bank.

    Parameters
    ----------
    taps : iterable of PricedTap
        Every priced tap of transit day ``day`` (a tap repeated unchanged counts once).
    day : date
        The transit day closed.

    Returns
    -------
    dict[str, tuple[Collection, ...]]
        Per bank id (sorted), its cards' collections sorted by card token; cards with a
        zero total are left out.

    Raises
    ------
    AggregationError
        A tap of another day, a negative fare or refund, a tap id repeated with different
        content, a card under two issuing banks, a card whose refunds exceed its fares,
        or a total beyond a 64-bit amount.

    >>> taps = [PricedTap("t1", "card-a", "ICBC", date(2026, 3, 2), 300),
    ...         PricedTap("t2", "card-a", "ICBC", date(2026, 3, 2), 200),
    ...         PricedTap("t3", "card-b", "BOC", date(2026, 3, 2), 0)]
    >>> taps.append(PricedTap("t4", "card-a", "ICBC", date(2026, 3, 2), 0, refund_minor=100))
    >>> collections_by_bank(taps, date(2026, 3, 2))
    {'ICBC': (Collection(issuing_bank_id='ICBC', card_token='card-a', transit_date=datetime.date(2026, 3, 2), amount_minor=400, tap_count=3),)}
    """
    seen: dict[str, PricedTap] = {}
    totals: dict[str, list[int]] = {}
    banks: dict[str, str] = {}
    for tap in taps:
        if tap.transit_date != day:
            raise AggregationError(f"tap {tap.tap_id}: transit_date {tap.transit_date} is not {day}")
        if tap.fare_minor < 0 or tap.refund_minor < 0:
            raise AggregationError(f"tap {tap.tap_id}: fare_minor {tap.fare_minor} or refund_minor "
                                   f"{tap.refund_minor} is negative")
        earlier = seen.get(tap.tap_id)
        if earlier is not None:
            if earlier != tap:
                raise AggregationError(f"tap {tap.tap_id}: repeated with different content")
            continue
        seen[tap.tap_id] = tap
        bank = banks.setdefault(tap.card_token, tap.issuing_bank_id)
        if bank != tap.issuing_bank_id:
            raise AggregationError(f"card {tap.card_token}: issued by {bank} and {tap.issuing_bank_id}")
        total = totals.setdefault(tap.card_token, [0, 0])
        total[0] += tap.fare_minor - tap.refund_minor
        total[1] += 1
        if total[0] > AMOUNT_MINOR_MAX:
            raise AggregationError(f"card {tap.card_token}: day total overflows a 64-bit amount")
    grouped: dict[str, list[Collection]] = {}
    for card, (amount_minor, count) in sorted(totals.items()):
        if amount_minor < 0:
            raise AggregationError(f"card {card}: refunds exceed fares by {-amount_minor}")
        if amount_minor > 0:
            grouped.setdefault(banks[card], []).append(Collection(banks[card], card, day, amount_minor, count))
    return {bank: tuple(grouped[bank]) for bank in sorted(grouped)}
