"""A card's running fare state, kept by the tap API between taps (one row per card).

The state is a msgspec Struct so the store can keep it as JSON or MessagePack
(:func:`encode_state` / :func:`decode_state`); the fare engine never mutates it, it
returns a new one with each priced tap.

The state also keeps the card's *day journal* (:class:`DayJournal`): the state the
current transit day opened with and every tap priced since, with what each was charged.
A tap arriving late (older than the card's last priced tap) is priced by replaying the
journal with the late tap in its time position (:meth:`engine.fares.pricing.FareEngine.price_tap`).
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec


class OpenEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An entry tap on an entry/exit network still waiting for its exit."""

    tap_id: str
    network_id: str
    station_id: str
    entered_at_utc: datetime


class SubJourney(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The legs joined by transfers so far (GTFS "transfer sub-journey").

    ``charged_minor`` is what the sub-journey has cost (S in the transfer cost algebra),
    before daily and weekly caps.
    """

    leg_group_id: str
    first_departure_at_utc: datetime
    first_arrival_at_utc: datetime
    transfers: int
    charged_minor: int


class DayTap(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """One tap of the day journal, as priced: ``kind`` is a tap kind (``entry``, ``exit``,
    ``single``) or ``close`` (the daily close charged the open entry's missing exit at
    ``tapped_at_utc``); ``charged_minor`` what the tap is charged in the journal's order
    (after caps; its share of the day total)."""

    tap_id: str
    network_id: str
    station_id: str
    kind: str
    tapped_at_utc: datetime
    charged_minor: int


class DayJournal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The taps priced since ``opening`` (the card's state before the first of them; its
    own ``journal`` is ``None``), in time order (``tapped_at_utc``, then ``tap_id``).

    A journal opens at the first tap of each transit day, and again when it holds
    :data:`engine.fares.pricing.DAY_TAPS_MAX` taps; only taps after ``opening``'s last
    tap can be priced late.
    """

    opening: "CardFareState"
    taps: tuple[DayTap, ...] = ()


class CardFareState(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Totals and open journey of one card. A new card starts from ``CardFareState()``.

    Attributes
    ----------
    transit_date : date | None
        The transit day the day total belongs to (local date, day boundary applied).
    day_total_minor, week_total_minor : int
        Charged so far this transit day / transit week (minor units, after caps).
    week_start : date | None
        First transit day of the week ``week_total_minor`` belongs to.
    concession_month : str
        ``YYYY-MM`` of ``concession_rides`` (monthly ride caps of rider categories).
    concession_rides : int
        Rides taken this month on a category with ``monthly_rides_max``.
    open_entry : OpenEntry | None
        The entry waiting for its exit.
    sub_journey : SubJourney | None
        The legs a transfer from the next leg may join.
    last_tapped_at_utc : datetime | None
        The latest tap priced (a missing exit charged by the daily close counts at its
        entry's time).
    journal : DayJournal | None
        The taps priced since the journal opened (late taps are re-priced from it).
    """

    transit_date: date | None = None
    day_total_minor: int = 0
    week_start: date | None = None
    week_total_minor: int = 0
    concession_month: str = ""
    concession_rides: int = 0
    open_entry: OpenEntry | None = None
    sub_journey: SubJourney | None = None
    last_tapped_at_utc: datetime | None = None
    journal: DayJournal | None = None


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(CardFareState)


def encode_state(state: CardFareState) -> bytes:
    """JSON bytes of ``state`` (for a JSONB column).

    >>> decode_state(encode_state(CardFareState(day_total_minor=300))).day_total_minor
    300
    """
    return _ENCODER.encode(state)


def decode_state(data: bytes | str) -> CardFareState:
    """The state encoded by :func:`encode_state`.

    Raises
    ------
    msgspec.ValidationError
        The bytes are not a valid state (unknown field, wrong type).
    """
    return _DECODER.decode(data)
