"""Pricing one tap: ``FareEngine.price_tap(state, tap) -> TapPricing``.

Pure: the card's running state comes in, the fare, the new state and the rules applied go
out; nothing is read or written elsewhere, so the tap API keeps the state in its database
and calls this on the hot path. All lookup tables (origin-destination fares, rule
matches) are built when the engine is loaded.

Order of work for one tap (each step reported as an :class:`Applied`):

1. Roll the day, week and month totals to the tap's transit day (day boundary, e.g.
   04:30 local).
2. An open entry that this tap does not close (an entry or single tap, an exit on
   another network, or more than ``journey_max_s`` after the entry) is a *missing
   exit*: its network's maximum fare is charged. A repeated entry at the same station
   within ``reentry_grace_s`` only replaces the open entry.
3. The tap itself: an entry opens a journey (nothing charged yet); an exit with no open
   entry is charged the network's maximum fare; an exit closing an entry, or a single
   tap, is priced as a leg (distance band, GTFS product or flat fare) for the rider's
   category at the leg's start (peak, monthly ride cap), then joined to the current
   sub-journey if a transfer rule allows.
4. Caps: the charge is cut so the day total never exceeds the daily cap and the week
   total never exceeds the weekly cap.

Maximum fares for missing exits are also reduced by the rider's concession (a
free-travel rider owes nothing for an unfinished journey).

Late taps. Taps of one card can arrive out of time order (gates of one station report
over different paths, a bus validator uploads its offline taps hours later). Every priced
tap is kept in the card's day journal (:class:`~engine.fares.state.DayJournal`); a tap
older than the journal's latest is priced by replaying the journal from its opening state
with the late tap in its time position, and what it charges now is the difference between
the day's charges after and before (negative: a refund). So the day's total, the caps and
the journeys (a late exit pairs with its entry, a late entry with its exit) come out as if
the taps had arrived in time order. Time order is ``(tapped_at_utc, tap_id)``, so taps
with equal times are ordered the same way whichever arrives first.

What cannot be re-priced, and raises :class:`TapOrderError` (the tap API declines it):
a late tap of a transit day before the card's current one (that day may be collected
already), or older than the journal's opening (a journal reopens every
:data:`DAY_TAPS_MAX` taps). A late tap is priced with the rider profile it comes with,
for the whole replay.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import msgspec

from engine.fares.days import transit_date, week_start
from engine.fares.errors import BadTapError, FareRulesError, UnpriceableError
from engine.fares.money import AMOUNT_MINOR_MAX
from engine.fares.networks import FareNetwork, GtfsFareNetwork, LegFare, Pairing
from engine.fares.riders import RiderCategoryRule, RiderProfile, RiderRules
from engine.fares.state import CardFareState, DayJournal, DayTap, OpenEntry, SubJourney
from engine.fares.transfers import LegTimes, TransferRule, find_transfer_rule, leg_cost_after_transfer


def _order(at_utc: datetime, tap_id: str) -> tuple[datetime, str]:
    """The time order of taps: by time, then by ``tap_id`` (equal times in a fixed order)."""
    return at_utc, tap_id


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadTapError(f"{field}: must carry a time zone (UTC)")
    return moment


# Taps a day journal holds before it reopens (a late tap before the reopening is refused).
DAY_TAPS_MAX = 64
# The journal id of the daily close's missing-exit charge: the entry's tap_id + this.
MISSING_EXIT_SUFFIX = ":missing-exit"
KIND_CLOSE = "close"
assert 2 <= DAY_TAPS_MAX <= 1000


class TapOrderError(BadTapError):
    """A late tap that cannot be re-priced: of an earlier transit day than the card's
    current one, or older than its day journal (see the module docstring)."""


class TapKind(enum.StrEnum):
    """What the gate or validator is: an entry gate, an exit gate, or a single-tap reader."""

    ENTRY = "entry"
    EXIT = "exit"
    SINGLE = "single"


class Rule(enum.StrEnum):
    """The rules a priced tap reports, in the order they apply."""

    MAX_FARE_MISSING_EXIT = "max_fare_missing_exit"
    ENTRY_REPEATED = "entry_repeated"
    ENTRY_OPENED = "entry_opened"
    MAX_FARE_EXIT_WITHOUT_ENTRY = "max_fare_exit_without_entry"
    CONCESSION_WITHHELD = "concession_withheld"
    DISTANCE_FARE = "distance_fare"
    GTFS_FARE = "gtfs_fare"
    FLAT_FARE = "flat_fare"
    CONCESSION = "concession"
    TRANSFER = "transfer"
    DAILY_CAP = "daily_cap"
    WEEKLY_CAP = "weekly_cap"
    LATE_TAP = "late_tap"


class TapFacts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the fare engine needs to know about one tap.

    ``station_id`` is the network's station or stop id (``stops.stop_id`` for GTFS
    networks); ``tapped_at_utc`` must be aware.
    """

    tap_id: str
    network_id: str
    station_id: str
    kind: TapKind
    tapped_at_utc: datetime
    rider: RiderProfile = RiderProfile()


class Applied(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One rule applied: ``amount_minor`` is the fare it set (fare rules, maximum fares)
    or the change it made (negative for concessions, transfer discounts, caps); for
    ``late_tap`` the difference re-pricing the day made to its charges."""

    rule: Rule
    amount_minor: int
    detail: str = ""


class TapPricing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The result of :meth:`FareEngine.price_tap`.

    ``fare_minor`` is what to debit now: >= 0 for a tap in time order; for a late tap the
    difference its re-pricing made to the day's charges, negative for a refund (the day
    total stays within the cap either way). ``state`` replaces the card's state;
    ``day_total_minor`` / ``week_total_minor`` include this fare; caps are ``None`` when
    not configured.
    """

    fare_minor: int
    state: CardFareState
    applied: tuple[Applied, ...]
    rider_category_id: str
    transit_date: date
    day_total_minor: int
    daily_cap_minor: int | None
    week_total_minor: int
    weekly_cap_minor: int | None


class Caps(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fare caps per card in minor units (``None`` = no cap); weeks start on ISO weekday
    ``week_starts_on`` (1 = Monday)."""

    daily_minor: int | None = None
    weekly_minor: int | None = None
    week_starts_on: int = 1


class FareEngine:
    """Networks, rider rules, transfer rules and caps, loaded once; prices taps.

    Parameters
    ----------
    networks : Mapping[str, FareNetwork]
        Keyed by the ``network_id`` taps name.
    riders : RiderRules
        Rider categories (see :mod:`engine.fares.riders`).
    timezone : ZoneInfo
        Local time zone of the transit day.
    day_boundary : time
        Local time a transit day starts (04:30 is common).
    caps : Caps
        Daily and weekly caps.
    transfer_rules : sequence of TransferRule
        Rules between ``LegFare.leg_group_id`` values (network ids, or a GTFS feed's
        ``leg_group_id``).
    transfer_products : Mapping[str, int]
        Amounts (minor units, may be negative) of the transfer products the rules name;
        products not here are looked up in the GTFS feeds of the networks.
    journey_max_s : int
        Longest time between entry and exit (Chengdu: 240 min); later, the entry counts
        as a missing exit.
    reentry_grace_s : int
        A second entry at the same station within this time replaces the open entry
        without a missing-exit charge (a rider tapping again at a gate that did not
        open); 0 turns this off.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from engine.fares.networks import FlatFareNetwork
    >>> engine = FareEngine({"bus": FlatFareNetwork("bus", 200, "CNY")}, RiderRules.load(),
    ...                     timezone=ZoneInfo("Asia/Shanghai"), caps=Caps(daily_minor=300))
    >>> at = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
    >>> first = engine.price_tap(CardFareState(), TapFacts("t1", "bus", "stop-1", TapKind.SINGLE, at))
    >>> second = engine.price_tap(first.state, TapFacts("t2", "bus", "stop-2", TapKind.SINGLE, at))
    >>> first.fare_minor, second.fare_minor, second.day_total_minor, [a.rule.value for a in second.applied]
    (200, 100, 300, ['flat_fare', 'daily_cap'])
    """

    def __init__(self, networks: Mapping[str, FareNetwork], riders: RiderRules, *, timezone: ZoneInfo,
                 day_boundary: time = time(4, 30), caps: Caps = Caps(),
                 transfer_rules: Sequence[TransferRule] = (), transfer_products: Mapping[str, int] | None = None,
                 journey_max_s: int = 4 * 3600, reentry_grace_s: int = 120) -> None:
        currencies = {network.currency for network in networks.values()}
        if len(currencies) != 1:
            raise FareRulesError(f"fare engine: networks must share one currency, found {sorted(currencies)}")
        for name, cap in (("daily", caps.daily_minor), ("weekly", caps.weekly_minor)):
            if cap is not None and not 0 <= cap <= AMOUNT_MINOR_MAX:
                raise FareRulesError(f"fare engine: {name} cap {cap} out of range")
        if not 1 <= caps.week_starts_on <= 7:
            raise FareRulesError(f"fare engine: week_starts_on {caps.week_starts_on} is not 1..7")
        if journey_max_s <= 0:
            raise FareRulesError("fare engine: journey_max_s must be positive")
        if not 0 <= reentry_grace_s < journey_max_s:
            raise FareRulesError("fare engine: reentry_grace_s must be 0 or more and below journey_max_s")
        self.networks = dict(networks)
        self.riders = riders
        self.timezone = timezone
        self.day_boundary = day_boundary
        self.caps = caps
        self.currency = currencies.pop()
        self.transfer_rules = tuple(transfer_rules)
        self.transfer_products = dict(transfer_products or {})
        self.journey_max_s = journey_max_s
        self.reentry_grace_s = reentry_grace_s
        self.max_fare_minor = max(network.max_fare_minor for network in self.networks.values())

    # -- public ----------------------------------------------------------------------

    def price_tap(self, state: CardFareState, tap: TapFacts) -> TapPricing:
        """Price ``tap`` for a card in ``state``; a late tap re-prices the card's day (see
        the module docstring).

        Returns
        -------
        TapPricing
            Fare to debit now (minor units, within the caps; negative only for a late tap
            that lowers the day's charges), the new state, the rules applied and the
            running totals.

        Raises
        ------
        UnpriceableError
            Unknown network or station, or no fare rule for the leg.
        BadTapError
            A tap kind the network does not use (an entry tap on a single-tap bus), or
            a naive ``tapped_at_utc``.
        TapOrderError
            A late tap that cannot be re-priced (a ``BadTapError``).
        """
        _aware(tap.tapped_at_utc, "tapped_at_utc")
        journal = state.journal
        if journal is not None and _order(tap.tapped_at_utc, tap.tap_id) < _order(
                journal.taps[-1].tapped_at_utc, journal.taps[-1].tap_id):
            return self._repriced(state, journal, tap)
        priced = self._priced(state, tap)
        return self._journaled(state, priced, DayTap(tap.tap_id, tap.network_id, tap.station_id,
                                                     tap.kind.value, tap.tapped_at_utc, priced.fare_minor))

    def _priced(self, state: CardFareState, tap: TapFacts) -> TapPricing:
        """Price ``tap`` after every tap ``state`` holds (the journal is left as it is)."""
        network = self.networks.get(tap.network_id)
        if network is None:
            raise UnpriceableError(f"network_id {tap.network_id!r}: unknown network")
        if not network.has_station(tap.station_id):
            raise UnpriceableError(f"station_id {tap.station_id!r}: not on network {tap.network_id!r}")
        single = network.pairing is Pairing.SINGLE
        if single != (tap.kind is TapKind.SINGLE):
            raise BadTapError(f"kind {tap.kind.value!r}: network {tap.network_id!r} takes "
                                   f"{'single' if single else 'entry and exit'} taps")
        at = _aware(tap.tapped_at_utc, "tapped_at_utc")
        state = self._rolled(state, at)
        local = at.astimezone(self.timezone)
        base = self.riders.base_category(tap.rider, local.date())
        applied: list[Applied] = []
        charge = 0
        open_entry, sub, rides = state.open_entry, state.sub_journey, state.concession_rides

        if open_entry is not None:
            elapsed_s = (at - open_entry.entered_at_utc).total_seconds()
            repeated = (tap.kind is TapKind.ENTRY and elapsed_s <= self.reentry_grace_s
                        and (open_entry.network_id, open_entry.station_id) == (tap.network_id, tap.station_id))
            if repeated:
                applied.append(Applied(Rule.ENTRY_REPEATED, 0, open_entry.tap_id))
                open_entry = None
            elif not (tap.kind is TapKind.EXIT and open_entry.network_id == tap.network_id
                      and elapsed_s <= self.journey_max_s):
                charge += self._max_fare(open_entry.network_id, Rule.MAX_FARE_MISSING_EXIT, open_entry.station_id,
                                         base, open_entry.entered_at_utc, rides, applied)
                open_entry, sub = None, None

        if tap.kind is TapKind.ENTRY:
            open_entry = OpenEntry(tap.tap_id, tap.network_id, tap.station_id, at)
            applied.append(Applied(Rule.ENTRY_OPENED, 0, tap.station_id))
        elif tap.kind is TapKind.EXIT and open_entry is None:
            charge += self._max_fare(tap.network_id, Rule.MAX_FARE_EXIT_WITHOUT_ENTRY, tap.station_id,
                                     base, at, rides, applied)
            sub = None
        else:
            paired = open_entry if tap.kind is TapKind.EXIT else None
            departure_at = paired.entered_at_utc if paired is not None else at
            category, why = self.riders.effective_category(base, departure_at.astimezone(self.timezone), rides)
            if why is not None:
                applied.append(Applied(Rule.CONCESSION_WITHHELD, 0, f"{base.category_id}: {why}"))
            leg = network.leg_fare(paired.station_id if paired is not None else tap.station_id,
                                   tap.station_id if paired is not None else None, departure_at, at, category)
            applied.append(Applied(Rule(leg.source.value), leg.full_minor, leg.detail))
            if leg.fare_minor != leg.full_minor:
                applied.append(Applied(Rule.CONCESSION, leg.fare_minor - leg.full_minor, category.category_id))
            if category.monthly_rides_max is not None:
                rides += 1
            cost, sub = self._joined(sub, leg, LegTimes(departure_at, at), category, applied)
            charge += cost
            open_entry = None

        return self._capped(state, charge, applied, base, at, open_entry=open_entry, sub_journey=sub,
                            concession_rides=rides)

    def close_open_entry(self, state: CardFareState, now_utc: datetime, rider: RiderProfile) -> TapPricing:
        """Charge a missing exit once the journey time is over (the daily close calls this).

        An open entry older than ``journey_max_s`` at ``now_utc`` is charged its network's
        maximum fare (on the entry's transit day, within its caps) and cleared, and the
        charge joins the day journal at ``now_utc`` (a late exit before it re-prices it);
        otherwise nothing changes and the fare is 0.
        """
        entry = state.open_entry
        priced = self._closed(state, now_utc, rider)
        if entry is None or priced.state.open_entry is not None:
            return priced
        return self._journaled(state, priced, DayTap(entry.tap_id + MISSING_EXIT_SUFFIX, entry.network_id,
                                                     entry.station_id, KIND_CLOSE, now_utc, priced.fare_minor))

    # -- late taps -------------------------------------------------------------------

    def _journaled(self, before: CardFareState, priced: TapPricing, tap: DayTap) -> TapPricing:
        """``priced`` with ``tap`` added to the day journal (a new one on a new transit day
        or when the journal is full)."""
        journal = before.journal
        if journal is None or priced.transit_date != before.transit_date or len(journal.taps) >= DAY_TAPS_MAX:
            journal = DayJournal(opening=msgspec.structs.replace(before, journal=None))
        assert not journal.taps or _order(journal.taps[-1].tapped_at_utc, journal.taps[-1].tap_id) <= _order(
            tap.tapped_at_utc, tap.tap_id)
        journal = DayJournal(journal.opening, journal.taps + (tap,))
        return msgspec.structs.replace(priced, state=msgspec.structs.replace(priced.state, journal=journal))

    def _repriced(self, state: CardFareState, journal: DayJournal, tap: TapFacts) -> TapPricing:
        """Price the late ``tap`` by replaying the day journal with it in its time position."""
        opened_at = journal.opening.last_tapped_at_utc
        if opened_at is not None and tap.tapped_at_utc <= opened_at:
            raise TapOrderError(f"tapped_at_utc {tap.tapped_at_utc.isoformat()} is before the card's day "
                                f"journal opened (last tap before it {opened_at.isoformat()})")
        day = transit_date(tap.tapped_at_utc, self.timezone, self.day_boundary)
        if day != state.transit_date:
            raise TapOrderError(f"tapped_at_utc {tap.tapped_at_utc.isoformat()}: transit day {day} is before "
                                f"the card's current transit day {state.transit_date}")
        if any(entry.tap_id == tap.tap_id for entry in journal.taps):
            raise BadTapError(f"tap_id {tap.tap_id!r}: already priced")
        late = DayTap(tap.tap_id, tap.network_id, tap.station_id, tap.kind.value, tap.tapped_at_utc, 0)
        replay = journal.opening
        charged: list[DayTap] = []
        mine: TapPricing | None = None
        for entry in sorted(journal.taps + (late,), key=lambda e: _order(e.tapped_at_utc, e.tap_id)):
            if entry.kind == KIND_CLOSE:
                priced = self._closed(replay, entry.tapped_at_utc, tap.rider)
            else:
                priced = self._priced(replay, TapFacts(entry.tap_id, entry.network_id, entry.station_id,
                                                       TapKind(entry.kind), entry.tapped_at_utc, tap.rider))
            replay = priced.state
            charged.append(msgspec.structs.replace(entry, charged_minor=priced.fare_minor))
            if entry is late:
                mine = priced
        assert mine is not None and replay.journal is None
        difference = sum(entry.charged_minor for entry in charged) - sum(e.charged_minor for e in journal.taps)
        assert replay.day_total_minor - state.day_total_minor == difference, (replay, state)
        assert self.caps.daily_minor is None or replay.day_total_minor <= self.caps.daily_minor
        applied = mine.applied + (Applied(Rule.LATE_TAP, difference, f"{len(charged)} taps of {day} re-priced"),)
        return TapPricing(difference, msgspec.structs.replace(replay, journal=DayJournal(journal.opening, tuple(charged))),
                          applied, mine.rider_category_id, day, replay.day_total_minor, self.caps.daily_minor,
                          replay.week_total_minor, self.caps.weekly_minor)

    def _closed(self, state: CardFareState, now_utc: datetime, rider: RiderProfile) -> TapPricing:
        """:meth:`close_open_entry` without the journal."""
        entry = state.open_entry
        now_utc = _aware(now_utc, "now_utc")
        if entry is None or (now_utc - entry.entered_at_utc).total_seconds() <= self.journey_max_s:
            at = state.last_tapped_at_utc or now_utc
            return self._capped(self._rolled(state, at), 0, [], self._base(rider, at), at,
                                open_entry=entry, sub_journey=state.sub_journey,
                                concession_rides=state.concession_rides)
        at = entry.entered_at_utc
        state = self._rolled(state, at)
        base = self._base(rider, at)
        applied: list[Applied] = []
        charge = self._max_fare(entry.network_id, Rule.MAX_FARE_MISSING_EXIT, entry.station_id, base, at,
                                state.concession_rides, applied)
        return self._capped(state, charge, applied, base, at, open_entry=None, sub_journey=None,
                            concession_rides=state.concession_rides)

    # -- steps -----------------------------------------------------------------------

    def _base(self, rider: RiderProfile, at: datetime) -> RiderCategoryRule:
        return self.riders.base_category(rider, at.astimezone(self.timezone).date())

    def _rolled(self, state: CardFareState, at: datetime) -> CardFareState:
        """``state`` with totals reset if ``at`` starts a new transit day, week or month."""
        if state.last_tapped_at_utc is not None and at < state.last_tapped_at_utc:
            raise TapOrderError(f"tapped_at_utc {at.isoformat()} is before the card's last tap "
                                f"{state.last_tapped_at_utc.isoformat()}")
        day = transit_date(at, self.timezone, self.day_boundary)
        week = week_start(day, self.caps.week_starts_on)
        month = f"{day.year:04d}-{day.month:02d}"
        if state.transit_date == day and state.week_start == week and state.concession_month == month:
            return state
        return msgspec.structs.replace(
            state, transit_date=day,
            day_total_minor=state.day_total_minor if state.transit_date == day else 0,
            week_start=week, week_total_minor=state.week_total_minor if state.week_start == week else 0,
            concession_month=month, concession_rides=state.concession_rides if state.concession_month == month else 0,
        )

    def _max_fare(self, network_id: str, rule: Rule, station_id: str, base: RiderCategoryRule, at: datetime,
                  rides: int, applied: list[Applied]) -> int:
        category, _ = self.riders.effective_category(base, at.astimezone(self.timezone), rides)
        full = self.networks[network_id].max_fare_minor
        fare = category.concession_minor(full)
        applied.append(Applied(rule, full, f"{network_id} {station_id}"))
        if fare != full:
            applied.append(Applied(Rule.CONCESSION, fare - full, category.category_id))
        return fare

    def _joined(self, sub: SubJourney | None, leg: LegFare, times: LegTimes, category: RiderCategoryRule,
                applied: list[Applied]) -> tuple[int, SubJourney]:
        """The leg's cost after any transfer rule, and the sub-journey it ends."""
        if sub is not None and self.transfer_rules:
            first = LegTimes(sub.first_departure_at_utc, sub.first_arrival_at_utc)
            number = sub.transfers + 1
            rule = find_transfer_rule(self.transfer_rules, sub.leg_group_id, leg.leg_group_id, number, first, times)
            if rule is not None:
                cost = leg_cost_after_transfer(rule, number, leg.fare_minor, sub.charged_minor,
                                               lambda product_id: self._transfer_amount(product_id, category))
                if cost != leg.fare_minor:
                    applied.append(Applied(Rule.TRANSFER, cost - leg.fare_minor,
                                           f"{sub.leg_group_id} -> {leg.leg_group_id} #{number}"))
                return cost, SubJourney(leg.leg_group_id, sub.first_departure_at_utc, sub.first_arrival_at_utc,
                                        number, sub.charged_minor + cost)
        return leg.fare_minor, SubJourney(leg.leg_group_id, times.departure_at, times.arrival_at, 0, leg.fare_minor)

    def _transfer_amount(self, product_id: str, category: RiderCategoryRule) -> int:
        amount = self.transfer_products.get(product_id)
        if amount is not None:
            return amount
        for network in self.networks.values():
            if isinstance(network, GtfsFareNetwork) and product_id in network.feed.products:
                return network.feed.product_amount(product_id, category.gtfs_rider_category_id)
        raise UnpriceableError(f"transfer fare_product_id {product_id!r}: no amount in the engine or any feed")

    def _capped(self, state: CardFareState, charge: int, applied: list[Applied], base: RiderCategoryRule,
                at: datetime, **changes) -> TapPricing:
        assert charge >= 0, charge
        fare = charge
        for rule, cap, total in ((Rule.DAILY_CAP, self.caps.daily_minor, state.day_total_minor),
                                 (Rule.WEEKLY_CAP, self.caps.weekly_minor, state.week_total_minor)):
            if cap is not None and fare > cap - total:
                room = max(0, cap - total)
                applied.append(Applied(rule, room - fare, f"cap {cap}"))
                fare = room
        day_total = state.day_total_minor + fare
        week_total = state.week_total_minor + fare
        if week_total > AMOUNT_MINOR_MAX:
            raise UnpriceableError("week_total_minor: overflows a 64-bit amount")
        new_state = msgspec.structs.replace(state, day_total_minor=day_total, week_total_minor=week_total,
                                            last_tapped_at_utc=at, **changes)
        assert 0 <= fare <= charge
        return TapPricing(fare, new_state, tuple(applied), base.category_id, state.transit_date, day_total,
                          self.caps.daily_minor, week_total, self.caps.weekly_minor)
