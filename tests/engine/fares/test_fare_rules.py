"""Rider rules (TOML), transfer rule matching and cost algebra, exact money parsing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from engine.fares.errors import FareRulesError
from engine.fares.money import to_minor
from engine.fares.riders import RiderProfile, RiderRules
from engine.fares.transfers import (DurationLimitType, LegTimes, TransferRule, TransferType,
                                    find_transfer_rule, leg_cost_after_transfer)

ON = date(2026, 3, 2)


@pytest.mark.parametrize(
    ("profile", "category"),
    [
        (RiderProfile(), "adult"),
        (RiderProfile(birth_date=date(1966, 3, 2)), "senior_60"),          # 60 today
        (RiderProfile(birth_date=date(1966, 3, 3)), "adult"),              # 60 tomorrow
        (RiderProfile(birth_date=date(1956, 3, 3)), "senior_60"),          # 69
        (RiderProfile(birth_date=date(1956, 3, 2)), "senior_70"),
        (RiderProfile(birth_date=date(2008, 1, 1), entitlements=frozenset({"student"})), "student"),
        (RiderProfile(birth_date=date(1950, 1, 1), entitlements=frozenset({"blind"})), "disabled"),
        (RiderProfile(entitlements=frozenset({"unknown_right"})), "adult"),
    ],
)
def test_category_from_entitlements_and_age(profile, category):
    assert RiderRules.load().base_category(profile, ON).category_id == category


def test_peak_windows():
    rules = RiderRules.load()
    assert rules.is_peak(datetime(2026, 3, 2, 7, 30)) and rules.is_peak(datetime(2026, 3, 6, 18, 59))
    assert not rules.is_peak(datetime(2026, 3, 2, 9, 0)) and not rules.is_peak(datetime(2026, 3, 7, 8, 0))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"category": [{"id": "a", "fare_percent": 101}]}, "fare_percent: 101 is not an integer 0..100"),
        ({"category": [{"id": "a", "fare_percent": 50, "colour": "red"}]}, "unknown key(s) ['colour']"),
        ({"category": [{"id": "a", "fare_percent": 0, "age_min": 70}]}, "must have no conditions"),
        ({"category": [{"id": "s", "fare_percent": 0, "off_peak_only": True}, {"id": "a", "fare_percent": 100}]},
         "restricted, needs otherwise"),
        ({"category": [{"id": "s", "fare_percent": 0, "off_peak_only": True, "otherwise": "x"},
                       {"id": "a", "fare_percent": 100}]}, "must be an unrestricted category"),
        ({"category": [{"id": "a", "fare_percent": 100}, {"id": "a", "fare_percent": 100}]}, "duplicate"),
        ({"category": []}, "needs 1..64 categories"),
        ({"category": [{"id": "a", "fare_percent": 100}], "peak": {"windows": [["09:00", "07:00"]]}}, "ends before"),
    ],
)
def test_bad_rider_rules(document, message):
    with pytest.raises(FareRulesError) as error:
        RiderRules.from_mapping(document)
    assert message in str(error.value)


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[[category]\n", encoding="utf-8")
    with pytest.raises(FareRulesError, match="rules.toml"):
        RiderRules.load(path)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("0.10", "CNY", 10), ("2", "CNY", 200), ("88.20", "PLN", 8820), ("-1.00", "CNY", -100), ("500", "JPY", 500),
     ("0.1", "CNY", 10), (" 3.5 ", "EUR", 350)],
)
def test_exact_amounts(text, currency, minor):
    assert to_minor(text, currency, "x", negative_ok=True) == minor


@pytest.mark.parametrize(("text", "message"), [("0.001", "more than 2 decimals"), ("NaN", "finite"),
                                               ("-1", "must not be negative"), ("1e400", "out of range"),
                                               ("0.0000000000005", "more than 2 decimals")])
def test_inexact_amounts_are_refused(text, message):
    with pytest.raises(FareRulesError, match=message):
        to_minor(text, "CNY", "x")


def test_decimal_sums_stay_exact():
    assert sum(to_minor(text, "CNY", "x") for text in ("0.10", "0.20", "0.30")) == to_minor("0.60", "CNY", "x")


def test_unknown_currency():
    with pytest.raises(FareRulesError, match="'XYZ'"):
        to_minor("1", "XYZ", "x")


T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


def times(start_min: int, end_min: int) -> LegTimes:
    return LegTimes(T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min))


def rule(from_group=None, to_group=None, count=None, limit=None, limit_type=None, kind=TransferType.FROM_LEG_PLUS_TRANSFER,
         product=None) -> TransferRule:
    return TransferRule(from_group, to_group, count, limit, limit_type, kind, product)


def test_exact_group_beats_empty_and_smallest_count_wins():
    general = rule(None, "b", product="general")
    specific = rule("a", "b", product="specific")
    assert find_transfer_rule([general, specific], "a", "b", 1, times(0, 10), times(20, 30)) is specific
    assert find_transfer_rule([general, specific], "c", "b", 1, times(0, 10), times(20, 30)) is general
    once, unlimited = rule("a", "a", 1, product="once"), rule("a", "a", -1, product="unlimited")
    assert find_transfer_rule([unlimited, once], "a", "a", 1, times(0, 10), times(20, 30)) is once
    assert find_transfer_rule([unlimited, once], "a", "a", 2, times(0, 10), times(20, 30)) is unlimited
    assert find_transfer_rule([once], "a", "a", 2, times(0, 10), times(20, 30)) is None


@pytest.mark.parametrize(
    ("limit_type", "within"),
    [(DurationLimitType.DEPARTURE_TO_ARRIVAL, False),   # 0 -> 70 min
     (DurationLimitType.DEPARTURE_TO_DEPARTURE, True),  # 0 -> 50
     (DurationLimitType.ARRIVAL_TO_DEPARTURE, True),    # 30 -> 50
     (DurationLimitType.ARRIVAL_TO_ARRIVAL, True)],     # 30 -> 70
)
def test_duration_limit_types(limit_type, within):
    limited = rule(limit=60 * 60, limit_type=limit_type)
    found = find_transfer_rule([limited], "a", "b", 1, times(0, 30), times(50, 70))
    assert (found is limited) is within


@pytest.mark.parametrize(
    ("kind", "number", "leg", "so_far", "transfer", "cost"),
    [
        (TransferType.FROM_LEG_PLUS_TRANSFER, 1, 300, 200, 50, 50),         # A + AB
        (TransferType.FROM_LEG_PLUS_TRANSFER, 1, 300, 200, -80, 0),         # never negative
        (TransferType.FROM_PLUS_TRANSFER_PLUS_TO, 1, 300, 200, -100, 200),  # A + AB + B
        (TransferType.FROM_PLUS_TRANSFER_PLUS_TO, 2, 300, 500, 0, 300),
        (TransferType.TRANSFER_ONLY, 1, 300, 200, 450, 250),                # AB replaces A
        (TransferType.TRANSFER_ONLY, 1, 300, 500, 450, 0),                  # no refund of A
        (TransferType.TRANSFER_ONLY, 2, 300, 450, 100, 100),                # chained: S + BC
    ],
)
def test_transfer_cost_algebra(kind, number, leg, so_far, transfer, cost):
    assert leg_cost_after_transfer(rule(kind=kind, product="p"), number, leg, so_far, {"p": transfer}.__getitem__) == cost


def test_transfer_rule_invariants():
    with pytest.raises(FareRulesError, match="duration_limit_type is required"):
        rule(limit=60)
    with pytest.raises(FareRulesError, match="transfer_count must be -1 or positive"):
        rule("a", "a", 0)
