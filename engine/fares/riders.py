"""Rider categories from a cardholder's entitlements and age, with rules as data (TOML).

The rules file (default: ``engine/fares/data/rider_rules.toml``, format documented at its
top) lists categories in priority order; the first whose conditions hold is the rider's
*base* category. At a given moment the base category may give way to its ``otherwise``
category: at peak when it is ``off_peak_only``, and once the month's concession rides
reach ``monthly_rides_max``.

Concession fares are ``full * fare_percent // 100``: rounded down to the minor unit, so a
concession never costs more than its percent of the full fare.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path

import msgspec

from engine.fares.errors import FareRulesError

# Categories per rules file.
CATEGORIES_MAX = 64


class RiderProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the card's holder record says about the rider (from the cardholder registry).

    ``entitlements`` are names such as ``"student"`` or ``"disability"`` (the rules
    file gives them meaning); ``birth_date`` is ``None`` when unknown (no age-based
    category then applies).
    """

    birth_date: date | None = None
    entitlements: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RiderCategoryRule:
    """One ``[[category]]`` of the rules file."""

    category_id: str
    name: str
    fare_percent: int
    entitlements_any: frozenset[str] = frozenset()
    age_min: int | None = None
    age_max: int | None = None
    off_peak_only: bool = False
    monthly_rides_max: int | None = None
    otherwise: str | None = None
    gtfs_rider_category_id: str | None = None

    @property
    def restricted(self) -> bool:
        """Whether the concession depends on the time or on the month's ride count."""
        return self.off_peak_only or self.monthly_rides_max is not None

    def applies_to(self, rider: RiderProfile, on: date) -> bool:
        """Whether ``rider`` qualifies on local date ``on``."""
        if self.entitlements_any and not (self.entitlements_any & rider.entitlements):
            return False
        if self.age_min is None and self.age_max is None:
            return True
        if rider.birth_date is None:
            return False
        years = age_years(rider.birth_date, on)
        return (self.age_min is None or years >= self.age_min) and (self.age_max is None or years <= self.age_max)

    def concession_minor(self, full_minor: int) -> int:
        """The rider's share of ``full_minor`` (rounded down).

        >>> RiderCategoryRule("student", "Student", 50).concession_minor(301)
        150
        """
        assert full_minor >= 0, full_minor
        return full_minor * self.fare_percent // 100


def age_years(birth_date: date, on: date) -> int:
    """Whole years of age on ``on`` (a 29 February birthday counts from 1 March in common years).

    >>> age_years(date(1956, 3, 2), date(2026, 3, 1)), age_years(date(1956, 3, 2), date(2026, 3, 2))
    (69, 70)
    """
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


def _clock(text: object, where: str) -> time:
    try:
        return time.fromisoformat(str(text))
    except ValueError:
        raise FareRulesError(f"{where}: {text!r} is not HH:MM") from None


class RiderRules:
    """Loaded rider rules: ordered categories and the peak definition."""

    def __init__(self, categories: tuple[RiderCategoryRule, ...], peak_weekdays: frozenset[int],
                 peak_windows: tuple[tuple[time, time], ...]) -> None:
        assert 0 < len(categories) <= CATEGORIES_MAX
        self.categories = categories
        self.by_id = {category.category_id: category for category in categories}
        self.peak_weekdays = peak_weekdays
        self.peak_windows = peak_windows

    @classmethod
    def load(cls, path: Path | None = None) -> "RiderRules":
        """Read a rules TOML file (default: the packaged ``rider_rules.toml``).

        Raises
        ------
        FareRulesError
            Bad TOML, an unknown key, a percent outside 0..100, a duplicate id, an
            ``otherwise`` that is unknown or itself restricted, or no catch-all last
            category (every rider must get one).
        """
        if path is None:
            text = resources.files("engine.fares").joinpath("data/rider_rules.toml").read_text(encoding="utf-8")
            name = "rider_rules.toml"
        else:
            try:
                text, name = Path(path).read_text(encoding="utf-8"), Path(path).name
            except FileNotFoundError:
                raise FareRulesError(f"{path}: file not found") from None
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise FareRulesError(f"{name}: {error}") from None
        return cls.from_mapping(document, name)

    @classmethod
    def from_mapping(cls, document: Mapping, name: str = "rider rules") -> "RiderRules":
        """Build the rules from a parsed document (same shape as the TOML file)."""
        allowed = set(RiderCategoryRule.__dataclass_fields__) - {"category_id"} | {"id"}
        categories = []
        for index, raw in enumerate(document.get("category", ()), start=1):
            where = f"{name} category {index}"
            unknown = set(raw) - allowed
            if unknown:
                raise FareRulesError(f"{where}: unknown key(s) {sorted(unknown)}")
            if "id" not in raw or "fare_percent" not in raw:
                raise FareRulesError(f"{where}: id and fare_percent are required")
            percent = raw["fare_percent"]
            if not isinstance(percent, int) or not 0 <= percent <= 100:
                raise FareRulesError(f"{where} fare_percent: {percent!r} is not an integer 0..100")
            rides = raw.get("monthly_rides_max")
            if rides is not None and (not isinstance(rides, int) or rides < 0):
                raise FareRulesError(f"{where} monthly_rides_max: {rides!r} is not a non-negative integer")
            fields = {key: value for key, value in raw.items() if key not in ("id", "name")}
            fields["entitlements_any"] = frozenset(raw.get("entitlements_any", ()))
            categories.append(RiderCategoryRule(category_id=str(raw["id"]), name=str(raw.get("name", raw["id"])),
                                                **fields))
        if not categories or len(categories) > CATEGORIES_MAX:
            raise FareRulesError(f"{name}: needs 1..{CATEGORIES_MAX} categories")
        ids = [category.category_id for category in categories]
        if len(set(ids)) != len(ids):
            raise FareRulesError(f"{name}: duplicate category id")
        by_id = dict(zip(ids, categories))
        for category in categories:
            if category.restricted and category.otherwise is None:
                raise FareRulesError(f"{name} category {category.category_id}: restricted, needs otherwise")
            if category.otherwise is not None:
                fallback = by_id.get(category.otherwise)
                if fallback is None or fallback.restricted:
                    raise FareRulesError(f"{name} category {category.category_id} otherwise: "
                                         f"{category.otherwise!r} must be an unrestricted category")
        last = categories[-1]
        if last.entitlements_any or last.age_min is not None or last.age_max is not None:
            raise FareRulesError(f"{name}: the last category must have no conditions (the catch-all)")
        peak = document.get("peak", {})
        weekdays = frozenset(peak.get("weekdays", ()))
        if not weekdays <= set(range(1, 8)):
            raise FareRulesError(f"{name} peak weekdays: {sorted(weekdays)} are not 1..7")
        windows = []
        for start, end in peak.get("windows", ()):
            window = (_clock(start, f"{name} peak windows"), _clock(end, f"{name} peak windows"))
            if window[0] >= window[1]:
                raise FareRulesError(f"{name} peak windows: {start}-{end} ends before it starts")
            windows.append(window)
        return cls(tuple(categories), weekdays, tuple(windows))

    def base_category(self, rider: RiderProfile, on: date) -> RiderCategoryRule:
        """The first category whose conditions hold for ``rider`` on local date ``on``."""
        for category in self.categories:
            if category.applies_to(rider, on):
                return category
        raise AssertionError("the catch-all category always applies")

    def is_peak(self, local: datetime) -> bool:
        """Whether local time ``local`` is in a peak window."""
        if local.isoweekday() not in self.peak_weekdays:
            return False
        clock = local.time()
        return any(start <= clock < end for start, end in self.peak_windows)

    def effective_category(self, base: RiderCategoryRule, local: datetime,
                           concession_rides_this_month: int) -> tuple[RiderCategoryRule, str | None]:
        """The category that prices a ride starting at ``local``, and why it differs from
        ``base`` (``"peak"`` or ``"monthly_rides_max"``; ``None`` when it does not)."""
        if base.off_peak_only and self.is_peak(local):
            return self.by_id[base.otherwise], "peak"
        if base.monthly_rides_max is not None and concession_rides_this_month >= base.monthly_rides_max:
            return self.by_id[base.otherwise], "monthly_rides_max"
        return base, None
