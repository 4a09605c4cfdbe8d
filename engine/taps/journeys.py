"""Pairing a card's recorded taps into journeys for display (pure).

Pricing pairs taps itself (:mod:`engine.fares.pricing`); this only groups the approved
taps the way a statement shows them, see :class:`engine.taps.wire.Journey`. Taps come in
time order, so a late entry or exit (recorded after later taps) pairs by its time; an
exit after the daily close charged its entry's missing exit pairs with the entry too (the
exit's record refunds the difference).
"""

from __future__ import annotations

from engine.fares.pricing import MISSING_EXIT_SUFFIX
from engine.taps.wire import CardTap, Journey


def pair(taps: list[CardTap]) -> list[Journey]:
    """Journeys of ``taps`` (oldest first), newest journey first; declined taps are left out.

    >>> def tap(n, direction, fare=0, refund=0, tap_id=None):
    ...     return CardTap(tap_id or f"t{n}", f"2026-11-30T08:0{n}:00+08:00", "S", direction,
    ...                    "approved", "approved", fare, fare, refund)
    >>> [j.kind for j in pair([tap(1, "exit", 900), tap(2, "entry"), tap(3, "exit", 300),
    ...                        tap(4, "entry"), tap(5, "entry", 900)])]
    ['open', 'missing_exit', 'complete', 'exit_without_entry']
    >>> late = pair([tap(1, "entry"), tap(1, "exit", 900, tap_id="t1:missing-exit"),
    ...              tap(2, "exit", 0, 600)])
    >>> [(j.kind, j.exit.tap_id, j.fare_minor, j.refund_minor) for j in late]
    [('complete', 't2', 900, 600)]
    """
    journeys: list[Journey] = []
    entry: CardTap | None = None
    charged: CardTap | None = None  # the daily close's missing-exit charge of ``entry``
    for tap in taps:
        if tap.decision != "approved":
            continue
        if tap.tap_id.endswith(MISSING_EXIT_SUFFIX) and entry is not None and charged is None:
            charged = tap
            continue
        if tap.direction == "exit" and not tap.tap_id.endswith(MISSING_EXIT_SUFFIX):
            kind = "complete" if entry is not None else "exit_without_entry"
            journeys.append(_journey(kind, entry, tap, charged))
            entry = charged = None
            continue
        if entry is not None:
            journeys.append(_journey("missing_exit", entry, charged, None))
            entry = charged = None
        if tap.direction == "exit":  # a missing-exit charge whose entry is not listed
            journeys.append(_journey("missing_exit", None, tap, None))
        elif tap.direction == "single":
            journeys.append(_journey("single", None, tap, None))
        else:
            entry = tap
    if entry is not None:
        journeys.append(_journey("open" if charged is None else "missing_exit", entry, charged, None))
    return journeys[::-1]


def _journey(kind: str, entry: CardTap | None, exit_: CardTap | None,
             charged: CardTap | None) -> Journey:
    taps = [tap for tap in (entry, exit_, charged) if tap is not None]
    return Journey(kind, entry, exit_, sum(tap.fare_minor for tap in taps),
                   sum(tap.refund_minor for tap in taps))
