"""Pairing a card's recorded taps into journeys for display (pure).

Pricing pairs taps itself (:mod:`engine.fares.pricing`); this only groups the approved
taps the way a statement shows them, see :class:`engine.taps.wire.Journey`.
"""

from __future__ import annotations

from engine.taps.wire import CardTap, Journey

# The record the daily close writes when it charges an entry's missing exit.
MISSING_EXIT_SUFFIX = ":missing-exit"


def pair(taps: list[CardTap]) -> list[Journey]:
    """Journeys of ``taps`` (oldest first), newest journey first; declined taps are left out.

    >>> def tap(n, direction, fare=0):
    ...     return CardTap(f"t{n}", f"2026-11-30T08:0{n}:00+08:00", "S", direction,
    ...                    "approved", "approved", fare, fare)
    >>> [j.kind for j in pair([tap(1, "exit", 900), tap(2, "entry"), tap(3, "exit", 300),
    ...                        tap(4, "entry"), tap(5, "entry", 900)])]
    ['open', 'missing_exit', 'complete', 'exit_without_entry']
    """
    journeys: list[Journey] = []
    entry: CardTap | None = None
    for tap in taps:
        if tap.decision != "approved":
            continue
        if tap.direction == "exit":
            kind = "complete" if entry is not None else "exit_without_entry"
            if tap.tap_id.endswith(MISSING_EXIT_SUFFIX):
                kind = "missing_exit"
            fare_minor = tap.fare_minor + (entry.fare_minor if entry is not None else 0)
            journeys.append(Journey(kind, entry, tap, fare_minor))
            entry = None
            continue
        if entry is not None:
            journeys.append(Journey("missing_exit", entry, None, entry.fare_minor))
            entry = None
        if tap.direction == "single":
            journeys.append(Journey("single", None, tap, tap.fare_minor))
        else:
            entry = tap
    if entry is not None:
        journeys.append(Journey("open", entry, None, entry.fare_minor))
    return journeys[::-1]
