"""Property tests: caps hold, fares are never negative, concessions never cost more,
pricing is deterministic; exact parsing of amounts and distances."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fares.config import load_engine
from engine.fares.days import transit_date, week_start
from engine.fares.money import to_minor
from engine.fares.pricing import FareEngine, TapFacts, TapKind
from engine.fares.riders import RiderProfile
from engine.fares.state import CardFareState, decode_state, encode_state
from engine.fares.stations import km_to_m

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"  # as tests/conftest.py
ENGINE: FareEngine = load_engine(shared_data=SHARED_DATA)
STATIONS = sorted(ENGINE.networks["metro"].stations.stations)
START = datetime(2026, 2, 23, 20, 0, tzinfo=timezone.utc)  # Tuesday 24 Feb 04:00 in Shanghai

ADULT = RiderProfile()
CONCESSIONS = [RiderProfile(birth_date=date(1960, 6, 1)), RiderProfile(birth_date=date(1950, 6, 1)),
               RiderProfile(entitlements=frozenset({"student"})), RiderProfile(entitlements=frozenset({"disability"}))]


@st.composite
def tap_sequences(draw):
    """Up to 40 taps of one card over up to ~3 weeks, in time order (gaps 0 s .. 8 h)."""
    at = START
    taps = []
    for index in range(draw(st.integers(1, 40))):
        at += timedelta(seconds=draw(st.integers(0, 8 * 3600)))
        network = draw(st.sampled_from(["metro", "metro", "bus", "tram"]))
        if network == "metro":
            station = draw(st.sampled_from(STATIONS))
            kind = draw(st.sampled_from([TapKind.ENTRY, TapKind.EXIT]))
        else:
            station, kind = f"stop-{draw(st.integers(1, 5))}", TapKind.SINGLE
        taps.append((f"t{index:02d}", network, station, kind, at))  # ids in time order
    return taps


def price_all(taps, rider: RiderProfile):
    state, results = CardFareState(), []
    for tap_id, network, station, kind, at in taps:
        result = ENGINE.price_tap(state, TapFacts(tap_id, network, station, kind, at, rider))
        state = result.state
        results.append(result)
    return results


riders = st.sampled_from([ADULT, *CONCESSIONS])


@settings(max_examples=150, deadline=None)
@given(tap_sequences(), riders)
def test_caps_hold_and_fares_are_never_negative(taps, rider):
    results = price_all(taps, rider)
    by_day, by_week = defaultdict(int), defaultdict(int)
    for result in results:
        assert 0 <= result.fare_minor <= ENGINE.max_fare_minor * 2  # at most a missing exit + this leg
        by_day[result.transit_date] += result.fare_minor
        by_week[week_start(result.transit_date, 1)] += result.fare_minor
        assert result.day_total_minor == by_day[result.transit_date]
        assert result.week_total_minor == by_week[week_start(result.transit_date, 1)]
    assert all(total <= ENGINE.caps.daily_minor for total in by_day.values())
    assert all(total <= ENGINE.caps.weekly_minor for total in by_week.values())


@settings(max_examples=100, deadline=None)
@given(tap_sequences(), st.sampled_from(CONCESSIONS))
def test_concession_never_costs_more_than_full_fare(taps, concession):
    adult, reduced = price_all(taps, ADULT), price_all(taps, concession)
    assert sum(result.fare_minor for result in reduced) <= sum(result.fare_minor for result in adult)
    # Tap by tap from the same state, too.
    for result, (tap_id, network, station, kind, at) in zip([None, *adult], taps):
        state = result.state if result is not None else CardFareState()
        full = ENGINE.price_tap(state, TapFacts(tap_id, network, station, kind, at, ADULT)).fare_minor
        cut = ENGINE.price_tap(state, TapFacts(tap_id, network, station, kind, at, concession)).fare_minor
        assert cut <= full


@settings(max_examples=60, deadline=None)
@given(tap_sequences(), riders)
def test_pricing_is_deterministic_and_state_survives_storage(taps, rider):
    first = price_all(taps, rider)
    assert price_all(taps, rider) == first
    state = CardFareState()
    for (tap_id, network, station, kind, at), expected in zip(taps, first):
        result = ENGINE.price_tap(decode_state(encode_state(state)), TapFacts(tap_id, network, station, kind, at, rider))
        assert result == expected
        state = result.state


@given(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2, allow_nan=False))
def test_two_decimal_amounts_convert_exactly(amount):
    assert to_minor(str(amount), "CNY", "x", negative_ok=True) == int(amount * 100)
    assert to_minor(f"{amount:f}", "PLN", "x", negative_ok=True) == int(amount * 100)


@given(st.integers(0, 10**9))
def test_km_with_three_decimals_convert_exactly(metres):
    assert km_to_m(f"{Decimal(metres) / 1000:f}", "x") == metres


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)),
       st.times())
def test_transit_day_is_the_local_date_or_the_day_before(at, boundary):
    zone = ZoneInfo("Asia/Shanghai")
    day = transit_date(at, zone, boundary)
    local = at.astimezone(zone)
    assert day == (local.date() if local.time().replace(tzinfo=None) >= boundary else local.date() - timedelta(days=1))


@pytest.mark.parametrize("boundary", [time(0, 0), time(4, 30)])
def test_transit_day_on_the_boundary(boundary):
    zone = ZoneInfo("Asia/Shanghai")
    at = datetime(2026, 3, 2, boundary.hour, boundary.minute, tzinfo=zone).astimezone(timezone.utc)
    assert transit_date(at, zone, boundary) == date(2026, 3, 2)
    assert transit_date(at - timedelta(seconds=1), zone, boundary) == date(2026, 3, 1)
