"""Late taps: a tap arriving out of time order is priced in its time position (the day
journal is replayed) and charges the difference; the day's total and caps come out as if
the taps had arrived in order.

Engine: the packaged Chengdu demo (see test_fare_pricing.py): Line 1 by distance bands
(maximum 8 yuan), flat 2-yuan buses, bus -> metro within 90 min 1 yuan off, caps 20 yuan
a day, day boundary 04:30 Asia/Shanghai.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fares.config import load_engine
from engine.fares.errors import BadTapError
from engine.fares.pricing import DAY_TAPS_MAX, FareEngine, Rule, TapFacts, TapKind, TapOrderError
from engine.fares.riders import RiderProfile
from engine.fares.state import CardFareState, decode_state, encode_state

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"  # as tests/conftest.py
ENGINE: FareEngine = load_engine(shared_data=SHARED_DATA)
STATIONS = sorted(ENGINE.networks["metro"].stations.stations)
ADULT = RiderProfile()


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI).astimezone(timezone.utc)


def tap(tap_id: str, kind: str, where: str, at: datetime, rider: RiderProfile = ADULT) -> TapFacts:
    network, station = where.split(":") if ":" in where else ("metro", where)
    return TapFacts(tap_id, network, station, TapKind(kind), at, rider)


def arrive(taps: list[TapFacts], state: CardFareState = CardFareState()):
    """Price ``taps`` in arrival order; return the results and the final state."""
    results = []
    for facts in taps:
        result = ENGINE.price_tap(state, facts)
        state = result.state
        results.append(result)
    return results, state


def test_late_exit_pairs_with_its_entry_and_refunds_the_missing_exit():
    entry = tap("e1", "entry", "sihe", local(2, 10))
    next_entry = tap("e2", "entry", "gaoxin", local(2, 12))
    late_exit = tap("x1", "exit", "luomashi", local(2, 10, 40))  # sihe -> luomashi: 5 yuan
    results, state = arrive([entry, next_entry, late_exit])
    assert [r.fare_minor for r in results] == [0, 800, -300]
    assert (results[-1].day_total_minor, state.day_total_minor) == (500, 500)
    assert results[-1].applied[-1].rule is Rule.LATE_TAP
    assert results[-1].applied[-1].amount_minor == -300
    assert state.open_entry.tap_id == "e2"
    assert [(t.tap_id, t.charged_minor) for t in state.journal.taps] == [("e1", 0), ("x1", 500), ("e2", 0)]


def test_late_entry_pairs_with_its_exit():
    results, state = arrive([tap("x1", "exit", "luomashi", local(2, 10, 40)),
                             tap("e1", "entry", "sihe", local(2, 10))])
    assert [r.fare_minor for r in results] == [800, -300]   # exit without entry, then the real fare
    assert state.day_total_minor == 500 and state.open_entry is None


def test_late_bus_tap_earns_the_transfer_discount():
    in_order = [tap("b1", "single", "bus:stop-7", local(2, 10)),
                tap("e1", "entry", "luomashi", local(2, 11, 29)), tap("x1", "exit", "nijiaqiao", local(2, 12))]
    results, state = arrive([in_order[1], in_order[2], in_order[0]])
    assert [r.fare_minor for r in results] == [0, 300, 100]  # bus 200, metro 300 - 100 discount
    assert state.day_total_minor == 400
    assert [r.fare_minor for r in arrive(in_order)[0]] == [200, 0, 200]


def test_late_exit_after_the_daily_close_charged_the_missing_exit():
    _, state = arrive([tap("e1", "entry", "sihe", local(2, 10))])
    closed = ENGINE.close_open_entry(state, local(2, 15), ADULT)
    assert closed.fare_minor == 800
    late = ENGINE.price_tap(closed.state, tap("x1", "exit", "luomashi", local(2, 10, 40)))
    assert (late.fare_minor, late.day_total_minor, late.state.open_entry) == (-300, 500, None)
    assert [t.charged_minor for t in late.state.journal.taps] == [0, 500, 0]


def test_late_taps_never_pass_the_daily_cap():
    day = [tap("e1", "entry", "weijianian", local(2, 7)), tap("x1", "exit", "kexuecheng", local(2, 7, 50)),
           tap("e2", "entry", "kexuecheng", local(2, 9)), tap("x2", "exit", "weijianian", local(2, 9, 50)),
           tap("e3", "entry", "weijianian", local(2, 12)), tap("x3", "exit", "kexuecheng", local(2, 12, 50)),
           tap("b1", "single", "bus:s", local(2, 18))]
    in_order, _ = arrive(day)
    assert [r.fare_minor for r in in_order] == [0, 800, 0, 800, 0, 400, 0]
    # The bus tap arrives first, then the metro day: each late entry is a missing exit
    # until its exit arrives, and the cap cuts the day at 20 yuan throughout.
    results, state = arrive([day[6], *day[:6]])
    assert [r.fare_minor for r in results] == [200, 800, 0, 800, 0, 200, 0]
    assert state.day_total_minor == 2000 and max(r.day_total_minor for r in results) == 2000
    assert [t.charged_minor for t in state.journal.taps] == [0, 800, 0, 800, 0, 400, 0]


def test_equal_times_are_ordered_by_tap_id_whichever_arrives_first():
    a, b = tap("a", "single", "bus:s", local(2, 10)), tap("b", "single", "tram:t", local(2, 10))
    first, second = arrive([a, b])[1], arrive([b, a])[1]
    assert first.journal.taps == second.journal.taps and first.day_total_minor == 400


def test_a_tap_priced_twice_is_refused_and_the_state_round_trips():
    _, state = arrive([tap("e1", "entry", "sihe", local(2, 10)), tap("e2", "entry", "gaoxin", local(2, 12))])
    with pytest.raises(BadTapError, match="already priced"):
        ENGINE.price_tap(state, tap("e1", "entry", "sihe", local(2, 10)))
    late = ENGINE.price_tap(decode_state(encode_state(state)), tap("x1", "exit", "luomashi", local(2, 10, 40)))
    assert late == ENGINE.price_tap(state, tap("x1", "exit", "luomashi", local(2, 10, 40)))


def test_a_full_journal_reopens_and_older_taps_are_refused():
    taps = [tap(f"b{n:03d}", "single", "bus:s", local(2, 5) + timedelta(minutes=n)) for n in range(DAY_TAPS_MAX + 1)]
    _, state = arrive(taps)
    assert len(state.journal.taps) == 1 and state.journal.opening.last_tapped_at_utc == taps[-2].tapped_at_utc
    with pytest.raises(TapOrderError, match="before the card's day journal opened"):
        ENGINE.price_tap(state, tap("late", "single", "bus:s", local(2, 5) + timedelta(seconds=30)))


def test_journal_opens_with_each_transit_day():
    _, state = arrive([tap("b1", "single", "bus:s", local(2, 23)), tap("b2", "single", "bus:s", local(3, 5))])
    assert [t.tap_id for t in state.journal.taps] == ["b2"]
    assert state.journal.opening.transit_date == date(2026, 3, 2)


@st.composite
def one_transit_day(draw):
    """Up to 24 taps of one card within one transit day (05:00 .. 03:00 local), in time order."""
    at = local(3, 5)
    taps = []
    for index in range(draw(st.integers(1, 24))):
        at += timedelta(seconds=draw(st.integers(0, 50 * 60)))
        network = draw(st.sampled_from(["metro", "metro", "bus", "tram"]))
        if network == "metro":
            station = draw(st.sampled_from(STATIONS))
            kind = draw(st.sampled_from(["entry", "exit"]))
        else:
            station, kind = f"stop-{draw(st.integers(1, 5))}", "single"
        taps.append(tap(f"t{index:02d}", kind, f"{network}:{station}", at))
    return taps


RIDERS = [ADULT, RiderProfile(birth_date=date(1960, 6, 1)), RiderProfile(birth_date=date(1950, 6, 1)),
          RiderProfile(entitlements=frozenset({"student"}))]


@settings(max_examples=150, deadline=None)
@given(one_transit_day(), st.sampled_from(RIDERS), st.randoms(use_true_random=False), st.booleans())
def test_any_arrival_order_charges_what_time_order_charges(day, rider, shuffler, yesterday):
    """Same total per card, same per-tap charges in the journal, same caps and open journey."""
    day = [TapFacts(t.tap_id, t.network_id, t.station_id, t.kind, t.tapped_at_utc, rider) for t in day]
    # The card may come from a day that left an open entry (a missing exit for the new day).
    start = arrive([tap("y", "entry", "sihe", local(2, 22), rider)])[1] if yesterday else CardFareState()
    in_order, ordered = arrive(day, start)
    shuffled = list(day)
    shuffler.shuffle(shuffled)
    results, state = arrive(shuffled, start)
    assert sum(r.fare_minor for r in results) == sum(r.fare_minor for r in in_order) == state.day_total_minor
    assert [(t.tap_id, t.charged_minor) for t in state.journal.taps] == [
        (t.tap_id, r.fare_minor) for t, r in zip(day, in_order)]
    assert (state.day_total_minor, state.week_total_minor, state.open_entry, state.sub_journey,
            state.concession_rides) == (ordered.day_total_minor, ordered.week_total_minor, ordered.open_entry,
                                        ordered.sub_journey, ordered.concession_rides)
    assert all(0 <= r.day_total_minor <= ENGINE.caps.daily_minor for r in results)


def test_shuffled_metro_day_example():
    """A fixed shuffle of a busy day (a regression example of the property above)."""
    day = [tap(f"t{n}", kind, station, local(3, 6) + timedelta(minutes=25 * n))
           for n, (kind, station) in enumerate([("entry", "sihe"), ("exit", "luomashi"), ("single", "bus:a"),
                                                ("entry", "luomashi"), ("exit", "nijiaqiao"), ("entry", "gaoxin"),
                                                ("entry", "sihe"), ("exit", "kexuecheng")])]
    in_order, _ = arrive(day)
    order = list(day)
    random.Random(7).shuffle(order)
    results, state = arrive(order)
    assert [r.fare_minor for r in in_order] == [0, 500, 200, 0, 200, 0, 800, 300]
    assert sum(r.fare_minor for r in results) == state.day_total_minor == 2000


def close(state: CardFareState, now: datetime) -> CardFareState:
    """The daily close of one card, as the tap API runs it (only a card with an open entry
    whose journey time is over changes)."""
    closed = ENGINE.close_open_entry(state, now, ADULT)
    return closed.state if state.open_entry is not None and closed.state.open_entry is None else state


@settings(max_examples=100, deadline=None)
@given(one_transit_day(), st.randoms(use_true_random=False), st.integers(0, 24))
def test_a_daily_close_between_arrivals_charges_what_time_order_charges(day, shuffler, close_after):
    """The daily close charges an open entry's missing exit; taps arriving after it are
    re-priced around it: the day ends as time order followed by the close."""
    now = local(4, 4)  # after every tap of the day (05:00 .. 03:00), still that transit day
    ordered = close(arrive(day)[1], now)
    shuffled = list(day)
    shuffler.shuffle(shuffled)
    state = close(arrive(shuffled[:close_after])[1], now)
    state = close(arrive(shuffled[close_after:], state)[1], now)
    assert (state.day_total_minor, state.open_entry, state.sub_journey) == (
        ordered.day_total_minor, ordered.open_entry, ordered.sub_journey)
