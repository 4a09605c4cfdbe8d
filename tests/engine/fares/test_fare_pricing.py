"""price_tap: journey pairing, maximum fares, transfers, caps, day boundary, concessions.

The engine is the packaged Chengdu demo (engine/fares/data/chengdu.toml): Line 1 by
distance bands (Weijianian - Science City 37.474 km = 8 yuan, the network maximum),
flat 2-yuan buses, bus -> metro within 90 min 1 yuan off, caps 20 yuan a day and 80 a
week, day boundary 04:30 Asia/Shanghai.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from engine.fares.config import load_engine
from engine.fares.errors import BadTapError, UnpriceableError
from engine.fares.gtfs import GtfsFares
from engine.fares.networks import GtfsFareNetwork, Pairing
from engine.fares.pricing import FareEngine, Rule, TapFacts, TapKind, TapOrderError
from engine.fares.riders import RiderProfile, RiderRules
from engine.fares.state import CardFareState, decode_state, encode_state

SHANGHAI = ZoneInfo("Asia/Shanghai")
ADULT = RiderProfile()
SENIOR_65 = RiderProfile(birth_date=date(1960, 6, 1))
SENIOR_75 = RiderProfile(birth_date=date(1950, 6, 1))
STUDENT = RiderProfile(entitlements=frozenset({"student"}))
DISABLED = RiderProfile(birth_date=date(1950, 6, 1), entitlements=frozenset({"disability"}))


@pytest.fixture(scope="module")
def engine(shared_data: Path) -> FareEngine:
    return load_engine(shared_data=shared_data)


def local(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """An aware UTC time from a Shanghai wall-clock time in 2026 (2 March is a Monday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(timezone.utc)


def tap(kind: str, where: str, at: datetime, rider: RiderProfile = ADULT) -> TapFacts:
    network, station = where.split(":") if ":" in where else ("metro", where)
    return TapFacts(f"{network}-{station}-{at.isoformat()}", network, station, TapKind(kind), at, rider)


def ride(entry: str, exit_: str, start: datetime, rider: RiderProfile = ADULT, minutes: int = 50) -> list[TapFacts]:
    return [tap("entry", entry, start, rider), tap("exit", exit_, start + timedelta(minutes=minutes), rider)]


def run(engine: FareEngine, taps: list[TapFacts], state: CardFareState = CardFareState()):
    results = []
    for facts in taps:
        result = engine.price_tap(state, facts)
        state = result.state
        results.append(result)
    return results


def fares(engine, taps, state=CardFareState()) -> list[int]:
    return [result.fare_minor for result in run(engine, taps, state)]


CASES = {
    "entry then exit, whole line": (ride("weijianian", "kexuecheng", local(2, 10)), [0, 800]),
    "short ride": (ride("tianfuguangchang", "luomashi", local(2, 10)), [0, 200]),
    "exit at the entry station": (ride("tianfuguangchang", "tianfuguangchang", local(2, 10), minutes=5), [0, 200]),
    "exit without entry: maximum fare": ([tap("exit", "tianfuguangchang", local(2, 10))], [800]),
    "entry twice at one gate within 2 min: no missing exit": (
        [tap("entry", "sihe", local(2, 10)), tap("entry", "sihe", local(2, 10, 2)),
         tap("exit", "luomashi", local(2, 10, 40))], [0, 0, 500]),  # 16.881 km
    "entry twice at one gate after 2 min: missing exit": (
        [tap("entry", "sihe", local(2, 10)), tap("entry", "sihe", local(2, 10, 3))], [0, 800]),
    "entry after entry: missing exit charged": (
        [tap("entry", "sihe", local(2, 10)), tap("entry", "gaoxin", local(2, 12)),
         tap("exit", "luomashi", local(2, 12, 40))], [0, 800, 400]),
    "exit after 240 min: missing exit and exit without entry": (
        ride("weijianian", "luomashi", local(2, 10), minutes=241), [0, 1600]),
    "exit at 240 min pairs": (ride("weijianian", "luomashi", local(2, 10), minutes=240), [0, 300]),
    "bus tap while inside the metro: missing exit": (
        [tap("entry", "sihe", local(2, 10)), tap("single", "bus:stop-7", local(2, 10, 30))], [0, 1000]),
    "bus then metro within 90 min: 1 yuan off": (
        [tap("single", "bus:stop-7", local(2, 10)), *ride("luomashi", "nijiaqiao", local(2, 11, 29))], [200, 0, 200]),
    "bus then metro after 90 min: no discount": (
        [tap("single", "bus:stop-7", local(2, 10)), *ride("luomashi", "nijiaqiao", local(2, 11, 31))], [200, 0, 300]),
    "discount larger than the leg makes it free, never negative": (
        [tap("single", "bus:stop-7", local(2, 10)), *ride("tianfuguangchang", "luomashi", local(2, 10, 20))],
        [200, 0, 100]),
    "metro then bus: no rule": (
        [*ride("luomashi", "nijiaqiao", local(2, 10)), tap("single", "bus:stop-7", local(2, 11))], [0, 300, 200]),
    "tram is flat": ([tap("single", "tram:t1", local(2, 10))], [200]),
    "daily cap 20 yuan": (
        ride("weijianian", "kexuecheng", local(2, 7)) + ride("kexuecheng", "weijianian", local(2, 9))
        + ride("weijianian", "kexuecheng", local(2, 12)) + [tap("single", "bus:s", local(2, 18))],
        [0, 800, 0, 800, 0, 400, 0]),
    "04:20 is still yesterday, 04:40 is a new day": (
        ride("weijianian", "kexuecheng", local(2, 7)) + ride("kexuecheng", "weijianian", local(2, 9))
        + ride("weijianian", "kexuecheng", local(2, 12)) + [tap("single", "bus:s", local(3, 4, 20)),
                                                           tap("single", "bus:s", local(3, 4, 40))],
        [0, 800, 0, 800, 0, 400, 0, 200]),
    "senior 60-69 half fare": (ride("weijianian", "kexuecheng", local(2, 10), SENIOR_65), [0, 400]),
    "student half fare": (ride("weijianian", "kexuecheng", local(2, 10), STUDENT), [0, 400]),
    "disabled rider free, even for a missing exit": (
        [tap("entry", "sihe", local(2, 10), DISABLED), tap("entry", "sihe", local(2, 11), DISABLED)], [0, 0]),
    "senior 70+ free off-peak": (ride("weijianian", "kexuecheng", local(2, 10), SENIOR_75), [0, 0]),
    "senior 70+ pays at weekday peak (by entry time)": (
        ride("weijianian", "kexuecheng", local(2, 8, 30), SENIOR_75, minutes=60), [0, 800]),
    "senior 70+ free at Saturday 08:00": (ride("weijianian", "kexuecheng", local(7, 8), SENIOR_75), [0, 0]),
    "half fare max for a student's missing exit": (
        [tap("exit", "sihe", local(2, 10), STUDENT)], [400]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_tap_sequences(engine, name):
    taps, expected = CASES[name]
    assert fares(engine, taps) == expected


def test_applied_rules_and_totals(engine):
    results = run(engine, [tap("single", "bus:stop-7", local(2, 10)),
                           *ride("luomashi", "nijiaqiao", local(2, 10, 30), STUDENT)])
    last = results[-1]
    assert [(applied.rule, applied.amount_minor) for applied in last.applied] == [
        (Rule.DISTANCE_FARE, 300), (Rule.CONCESSION, -150), (Rule.TRANSFER, -100)]
    assert last.applied[0].detail == "4649 m"   # 1.018 + 0.833 + 0.779 + 1.058 + 0.961 km
    assert (last.fare_minor, last.day_total_minor, last.daily_cap_minor, last.week_total_minor,
            last.weekly_cap_minor) == (50, 250, 2000, 250, 8000)  # adult bus 200 + student metro 50
    assert (last.rider_category_id, last.transit_date) == ("student", date(2026, 3, 2))
    assert results[0].rider_category_id == "adult"


def test_cap_reports_the_cut(engine):
    results = run(engine, ride("weijianian", "kexuecheng", local(2, 7)) + ride("kexuecheng", "weijianian", local(2, 9))
                  + ride("weijianian", "kexuecheng", local(2, 12)))
    assert results[-1].applied[-1].rule is Rule.DAILY_CAP
    assert results[-1].applied[-1].amount_minor == -400
    assert results[-1].day_total_minor == 2000


def test_weekly_cap_and_new_week(engine):
    taps = []
    for day in range(2, 9):  # Monday 2 March to Sunday 8 March, then Monday 9 March
        for hour in (7, 9, 12):
            taps += ride("weijianian", "kexuecheng", local(day, hour))
    taps += ride("weijianian", "kexuecheng", local(9, 7))
    results = run(engine, taps)
    per_day = {}
    for result in results:
        per_day[result.transit_date] = per_day.get(result.transit_date, 0) + result.fare_minor
    assert list(per_day.values()) == [2000, 2000, 2000, 2000, 0, 0, 0, 800]
    assert max(result.week_total_minor for result in results) == 8000
    assert results[-1].week_total_minor == 800


def test_monthly_ride_cap_of_free_seniors(engine):
    taps = [tap("single", "bus:s", local(1 + index // 10, 10, index % 10), SENIOR_75) for index in range(51)]
    results = run(engine, taps)
    assert [result.fare_minor for result in results[:50]] == [0] * 50
    assert results[50].fare_minor == 200
    assert results[50].applied[0].detail == "senior_70: monthly_rides_max"
    april = engine.price_tap(results[-1].state, tap("single", "bus:s", local(1, 10, month=4), SENIOR_75))
    assert april.fare_minor == 0 and april.state.concession_rides == 1


def test_age_is_taken_on_the_local_date():
    rules = RiderRules.load()
    turning_70 = RiderProfile(birth_date=date(1956, 3, 2))
    # 01:00 on 2 March in Shanghai is still 1 March in UTC: the local date decides.
    assert rules.base_category(turning_70, local(2, 1).astimezone(SHANGHAI).date()).category_id == "senior_70"
    assert rules.base_category(turning_70, local(2, 1).date()).category_id == "senior_60"


def test_entry_tap_on_a_bus_and_unknown_stations_are_refused(engine):
    with pytest.raises(BadTapError, match="takes single taps"):
        engine.price_tap(CardFareState(), tap("entry", "bus:s", local(2, 10)))
    with pytest.raises(BadTapError, match="takes entry and exit taps"):
        engine.price_tap(CardFareState(), tap("single", "sihe", local(2, 10)))
    with pytest.raises(UnpriceableError, match="'chunxilu'"):
        engine.price_tap(CardFareState(), tap("entry", "chunxilu", local(2, 10)))
    with pytest.raises(UnpriceableError, match="'subway'"):
        engine.price_tap(CardFareState(), tap("entry", "subway:x", local(2, 10)))
    with pytest.raises(BadTapError, match="time zone"):
        engine.price_tap(CardFareState(), tap("single", "bus:s", datetime(2026, 3, 2, 10)))


def test_late_taps_that_cannot_be_repriced_are_refused(engine):
    state = engine.price_tap(CardFareState(), tap("single", "bus:s", local(2, 10))).state
    with pytest.raises(BadTapError, match="time zone"):
        engine.price_tap(state, tap("single", "bus:s", datetime(2026, 3, 2, 10)))
    with pytest.raises(TapOrderError, match="before the card's current transit day"):
        engine.price_tap(state, tap("single", "bus:s", local(2, 4)))  # 04:00: the day before
    # A state kept before day journals existed prices in time order only.
    legacy = msgspec.structs.replace(state, journal=None)
    with pytest.raises(TapOrderError, match="before the card's last tap"):
        engine.price_tap(legacy, tap("single", "bus:s", local(2, 9)))


def test_close_open_entry(engine):
    state = engine.price_tap(CardFareState(), tap("entry", "sihe", local(2, 22))).state
    early = engine.close_open_entry(state, local(3, 1), ADULT)
    assert early.fare_minor == 0 and early.state.open_entry is not None
    closed = engine.close_open_entry(state, local(3, 4), ADULT)
    assert (closed.fare_minor, closed.transit_date, closed.state.open_entry) == (800, date(2026, 3, 2), None)
    assert closed.applied[0].rule is Rule.MAX_FARE_MISSING_EXIT


def test_state_round_trips_through_json(engine):
    results = run(engine, [tap("single", "bus:s", local(2, 10)), tap("entry", "sihe", local(2, 10, 30))])
    state = results[-1].state
    assert decode_state(encode_state(state)) == state
    again = engine.price_tap(decode_state(encode_state(state)), tap("exit", "luomashi", local(2, 11)))
    assert again == engine.price_tap(state, tap("exit", "luomashi", local(2, 11)))


def test_gtfs_network_with_rider_categories(shared_data):
    feed = GtfsFares.load(shared_data / "transit" / "gtfs_zakroczym_pl")
    engine = FareEngine({"zkm": GtfsFareNetwork("zkm", feed, Pairing.ENTRY_EXIT)}, RiderRules.load(),
                        timezone=ZoneInfo("Europe/Warsaw"), day_boundary=time(3, 0))
    at = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

    def journey(rider, entry="100", exit_="120"):
        return fares(engine, [TapFacts("a", "zkm", entry, TapKind.ENTRY, at, rider),
                              TapFacts("b", "zkm", exit_, TapKind.EXIT, at + timedelta(minutes=30), rider)])

    assert journey(ADULT) == [0, 500]                   # Zakroczym -> Nowy Dwór Mazowiecki, 5.00 PLN
    assert journey(ADULT, "117", "120") == [0, 400]     # Modlin-Twierdza -> NDM
    assert journey(ADULT, "100", "116") == [0, 0]       # within Zakroczym
    assert journey(STUDENT) == [0, 500]                 # feed category 2 has no single-ride product
    assert journey(SENIOR_65) == [0, 250]               # no feed category: 50 % of the regular fare
    assert journey(DISABLED) == [0, 0]
    assert fares(engine, [TapFacts("c", "zkm", "120", TapKind.EXIT, at, ADULT)]) == [500]  # feed maximum
