"""GTFS-Fares v2 loader and leg pricer.

Reads ``areas``, ``stop_areas``, ``fare_media``, ``rider_categories``, ``fare_products``,
``timeframes`` (with ``calendar``/``calendar_dates``), ``fare_leg_rules`` and
``fare_transfer_rules`` from a feed folder and prices one leg (from stop, to stop, time,
rider category, medium) in integer minor units (GTFS reference, "Fares v2" files; field
tables in ``shared/data/transit/gtfs_fares_v2_field_tables.md``).

Matching rules (``fare_leg_rules.txt``):

- Without a ``rule_priority`` column, an empty field matches only when no rule names the
  leg's value for that field (fields are narrowed in the order network, from area, to
  area, from timeframe, to timeframe); with the column, an empty field means "any" and the
  highest ``rule_priority`` among matching rules wins.
- Several products left after matching: the cheapest for the rider is charged.

Rider categories (``fare_products.rider_category_id``): a product row for the rider's
category is used; else a row with no category (open to every rider); else the row of the
default category (``is_default_fare_category = 1``): a rider with no concession product
for this leg pays the regular fare, as a rider would at a ticket machine.

Fare media: ``fare_media_id=None`` asks for any medium (the cheapest row); a named medium
uses its rows, else rows with no medium.

What it cannot do: ``fare_leg_join_rules.txt``, ``networks.txt``/``route_networks.txt``
(the caller passes the leg's ``network_id``), and area membership by route. Amounts are
exact (``Decimal``, see :mod:`engine.fares.money`); a feed mixing currencies is refused.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.fares.csvfile import Row, read_rows
from engine.fares.errors import FareRulesError, UnpriceableError
from engine.fares.money import to_minor
from engine.fares.transfers import DurationLimitType, TransferRule, TransferType

SECONDS_PER_DAY = 86_400
# Matched (network, from stop, to stop) rule lists kept; cleared when full.
RULES_CACHE_MAX = 200_000


@dataclass(frozen=True, slots=True)
class RiderCategory:
    """A row of ``rider_categories.txt``."""

    rider_category_id: str
    name: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class FareMedium:
    """A row of ``fare_media.txt`` (``fare_media_type`` 0 none, 1 paper, 2 card, 3 cEMV, 4 app)."""

    fare_media_id: str
    name: str | None
    fare_media_type: int


@dataclass(frozen=True, slots=True)
class FareProduct:
    """A row of ``fare_products.txt``; ``amount_minor`` in minor units of ``currency``."""

    fare_product_id: str
    name: str | None
    rider_category_id: str | None
    fare_media_id: str | None
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class LegRule:
    """A row of ``fare_leg_rules.txt`` (empty fields are ``None``)."""

    leg_group_id: str | None
    network_id: str | None
    from_area_id: str | None
    to_area_id: str | None
    from_timeframe_group_id: str | None
    to_timeframe_group_id: str | None
    fare_product_id: str
    rule_priority: int


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A row of ``timeframes.txt``: local seconds since midnight, end exclusive."""

    timeframe_group_id: str
    start_s: int
    end_s: int
    service_id: str


@dataclass(frozen=True, slots=True)
class LegPrice:
    """The price of one leg for one rider: the product charged and its amount."""

    fare_product_id: str
    leg_group_id: str | None
    rider_category_id: str | None
    fare_media_id: str | None
    amount_minor: int


def _time_s(row: Row, field: str, default: int) -> int:
    text = row[field]
    if text is None:
        return default
    parts = text.split(":")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise FareRulesError(f"{row.where(field)}: {text!r} is not HH:MM:SS")
    hours, minutes, seconds = (int(part) for part in parts)
    total = hours * 3600 + minutes * 60 + seconds
    if minutes > 59 or seconds > 59 or total > SECONDS_PER_DAY:
        raise FareRulesError(f"{row.where(field)}: {text!r} is not a time up to 24:00:00")
    return total


def _date(row: Row, field: str) -> date:
    text = row.required(field)
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise FareRulesError(f"{row.where(field)}: {text!r} is not YYYYMMDD") from None


class Calendar:
    """Service dates from ``calendar.txt`` and ``calendar_dates.txt``."""

    def __init__(self, folder: Path) -> None:
        self._weekly: dict[str, tuple[date, date, tuple[bool, ...]]] = {}
        self._added: set[tuple[str, date]] = set()
        self._removed: set[tuple[str, date]] = set()
        days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        if (folder / "calendar.txt").exists():
            for row in read_rows(folder / "calendar.txt", ("service_id", *days, "start_date", "end_date")):
                flags = tuple(row.required(day) == "1" for day in days)
                self._weekly[row.required("service_id")] = (_date(row, "start_date"), _date(row, "end_date"), flags)
        if (folder / "calendar_dates.txt").exists():
            for row in read_rows(folder / "calendar_dates.txt", ("service_id", "date", "exception_type")):
                key = (row.required("service_id"), _date(row, "date"))
                kind = row.required("exception_type")
                if kind not in ("1", "2"):
                    raise FareRulesError(f"{row.where('exception_type')}: {kind!r} is not 1 or 2")
                (self._added if kind == "1" else self._removed).add(key)

    def runs(self, service_id: str, day: date) -> bool:
        """Whether ``service_id`` runs on the local date ``day``."""
        if (service_id, day) in self._removed:
            return False
        if (service_id, day) in self._added:
            return True
        weekly = self._weekly.get(service_id)
        return weekly is not None and weekly[0] <= day <= weekly[1] and weekly[2][day.weekday()]


class GtfsFares:
    """A loaded GTFS-Fares v2 feed: lookup tables built once, legs priced from them.

    Use :meth:`load`. Pricing a leg is a few dictionary lookups; the rule matching for a
    (network, from stop, to stop) is computed once and kept (timeframes still apply per
    leg).
    """

    def __init__(
        self,
        *,
        timezone: ZoneInfo,
        currency: str,
        areas: dict[str, str | None],
        stop_areas: dict[str, frozenset[str]],
        rider_categories: dict[str, RiderCategory],
        fare_media: dict[str, FareMedium],
        products: dict[str, tuple[FareProduct, ...]],
        leg_rules: tuple[LegRule, ...],
        has_rule_priority: bool,
        timeframes: dict[str, tuple[Timeframe, ...]],
        calendar: Calendar | None,
        transfer_rules: tuple[TransferRule, ...],
    ) -> None:
        self.timezone = timezone
        self.currency = currency
        self.areas = areas
        self.stop_areas = stop_areas
        self.rider_categories = rider_categories
        self.fare_media = fare_media
        self.products = products
        self.leg_rules = leg_rules
        self.has_rule_priority = has_rule_priority
        self.timeframes = timeframes
        self.calendar = calendar
        self.transfer_rules = transfer_rules
        defaults = [category.rider_category_id for category in rider_categories.values() if category.is_default]
        self.default_rider_category_id = defaults[0] if defaults else None
        self._rules_cache: dict[tuple[str | None, str, str | None], tuple[LegRule, ...]] = {}

    # -- loading ---------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path) -> "GtfsFares":
        """Load the feed in ``folder`` (text files as in the GTFS reference).

        Raises
        ------
        FareRulesError
            A required file or column is missing, a foreign id is unknown, an amount is
            not exact in its currency, or the feed mixes currencies.
        """
        folder = Path(folder)
        if not (folder / "fare_leg_rules.txt").exists() or not (folder / "fare_products.txt").exists():
            raise FareRulesError(f"{folder}: fare_leg_rules.txt and fare_products.txt are required for Fares v2")
        timezone = _agency_timezone(folder)
        areas = _load_areas(folder)
        stop_areas = _load_stop_areas(folder, areas)
        rider_categories = _load_rider_categories(folder)
        fare_media = _load_fare_media(folder)
        products, currency = _load_products(folder, rider_categories, fare_media)
        timeframes = _load_timeframes(folder)
        leg_rules, has_priority = _load_leg_rules(folder, areas, products, timeframes)
        transfer_rules = _load_transfer_rules(folder, leg_rules, products)
        calendar = Calendar(folder) if timeframes else None
        return cls(
            timezone=timezone, currency=currency, areas=areas, stop_areas=stop_areas,
            rider_categories=rider_categories, fare_media=fare_media, products=products,
            leg_rules=leg_rules, has_rule_priority=has_priority, timeframes=timeframes,
            calendar=calendar, transfer_rules=transfer_rules,
        )

    # -- pricing ---------------------------------------------------------------------

    def price_leg(
        self,
        from_stop_id: str,
        to_stop_id: str | None,
        departure_at: datetime,
        arrival_at: datetime | None = None,
        *,
        rider_category_id: str | None = None,
        fare_media_id: str | None = None,
        network_id: str | None = None,
    ) -> LegPrice:
        """Price a leg from ``from_stop_id`` to ``to_stop_id`` for one rider.

        Parameters
        ----------
        from_stop_id, to_stop_id : str
            ``stops.stop_id`` of the departure and arrival validations; ``to_stop_id=None``
            for a single-tap leg (only rules with an empty ``to_area_id`` can match).
        departure_at, arrival_at : datetime
            Aware validation times (converted to the agency's time zone for timeframes);
            ``arrival_at`` defaults to ``departure_at``.
        rider_category_id : str, optional
            ``rider_categories.rider_category_id``; ``None`` is the default category.
        fare_media_id : str, optional
            ``fare_media.fare_media_id``; ``None`` means any medium.
        network_id : str, optional
            The leg's network (``routes.network_id``).

        Returns
        -------
        LegPrice
            The cheapest eligible product and its amount in minor units.

        Raises
        ------
        UnpriceableError
            Unknown stop or rider category, or no rule or product fits the leg.
        """
        if rider_category_id is not None and rider_category_id not in self.rider_categories:
            raise UnpriceableError(f"rider_category_id {rider_category_id!r} is not in rider_categories.txt")
        rules = self._rules_for(network_id, from_stop_id, to_stop_id)
        if self.timeframes:
            rules = self._by_timeframe(rules, departure_at, arrival_at or departure_at)
        best: LegPrice | None = None
        for rule in rules:
            product = self._product_for(rule.fare_product_id, rider_category_id, fare_media_id)
            if product is not None and (best is None or product.amount_minor < best.amount_minor):
                best = LegPrice(rule.fare_product_id, rule.leg_group_id, product.rider_category_id,
                                product.fare_media_id, product.amount_minor)
        if best is None:
            raise UnpriceableError(
                f"no fare product for a leg {from_stop_id!r} -> {to_stop_id!r} "
                f"(rider category {rider_category_id!r}, medium {fare_media_id!r})"
            )
        assert best.amount_minor >= 0, best
        return best

    def product_amount(self, fare_product_id: str, rider_category_id: str | None = None,
                       fare_media_id: str | None = None) -> int:
        """Amount (minor units, may be negative for transfer products) of a product for a rider.

        Raises
        ------
        UnpriceableError
            No row of that product is open to the rider and medium.
        """
        product = self._product_for(fare_product_id, rider_category_id, fare_media_id)
        if product is None:
            raise UnpriceableError(f"fare product {fare_product_id!r} has no row for rider category {rider_category_id!r}")
        return product.amount_minor

    def _areas_of(self, stop_id: str) -> frozenset[str]:
        try:
            return self.stop_areas[stop_id]
        except KeyError:
            raise UnpriceableError(f"stop_id {stop_id!r} is in no area of stop_areas.txt") from None

    def _rules_for(self, network_id: str | None, from_stop_id: str, to_stop_id: str | None) -> tuple[LegRule, ...]:
        key = (network_id, from_stop_id, to_stop_id)
        cached = self._rules_cache.get(key)
        if cached is None:
            from_areas = self._areas_of(from_stop_id)
            to_areas = self._areas_of(to_stop_id) if to_stop_id is not None else frozenset()
            fields = (("network_id", frozenset() if network_id is None else frozenset((network_id,))),
                      ("from_area_id", from_areas), ("to_area_id", to_areas))
            cached = tuple(self._match(list(self.leg_rules), fields))
            if len(self._rules_cache) >= RULES_CACHE_MAX:
                self._rules_cache.clear()
            self._rules_cache[key] = cached
        return cached

    def _match(self, rules: list[LegRule], fields) -> list[LegRule]:
        if self.has_rule_priority:
            matching = [rule for rule in rules
                        if all(getattr(rule, field) is None or getattr(rule, field) in values for field, values in fields)]
            if not matching:
                return []
            top = max(rule.rule_priority for rule in matching)
            return [rule for rule in matching if rule.rule_priority == top]
        for field, values in fields:
            exact = [rule for rule in rules if getattr(rule, field) is not None and getattr(rule, field) in values]
            rules = exact if exact else [rule for rule in rules if getattr(rule, field) is None]
        return rules

    def _groups_at(self, moment: datetime) -> frozenset[str]:
        local = moment.astimezone(self.timezone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        assert self.calendar is not None
        return frozenset(
            group for group, frames in self.timeframes.items()
            if any(frame.start_s <= seconds < frame.end_s and self.calendar.runs(frame.service_id, local.date())
                   for frame in frames)
        )

    def _by_timeframe(self, rules: tuple[LegRule, ...], departure_at: datetime, arrival_at: datetime) -> list[LegRule]:
        fields = (("from_timeframe_group_id", self._groups_at(departure_at)),
                  ("to_timeframe_group_id", self._groups_at(arrival_at)))
        return self._match(list(rules), fields)

    def _product_for(self, fare_product_id: str, rider_category_id: str | None,
                     fare_media_id: str | None) -> FareProduct | None:
        rows = self.products.get(fare_product_id, ())
        if fare_media_id is not None:
            rows = tuple(row for row in rows if row.fare_media_id == fare_media_id) or tuple(
                row for row in rows if row.fare_media_id is None)
        wanted = rider_category_id if rider_category_id is not None else self.default_rider_category_id
        eligible = (tuple(row for row in rows if row.rider_category_id == wanted and wanted is not None)
                    or tuple(row for row in rows if row.rider_category_id is None)
                    or tuple(row for row in rows if row.rider_category_id == self.default_rider_category_id))
        return min(eligible, key=lambda row: row.amount_minor, default=None)


# -- file loaders ----------------------------------------------------------------------


def stop_coordinates(folder: Path) -> dict[str, tuple[float, float]]:
    """``stop_id`` -> (``stop_lat``, ``stop_lon``) from the feed's ``stops.txt`` (for the
    impossible-travel alert, which needs only approximate distances).

    Raises
    ------
    FareRulesError
        A missing column or a coordinate that is not a number in range.
    """
    coordinates = {}
    for row in read_rows(Path(folder) / "stops.txt", ("stop_id",)):
        if row["stop_lat"] is None or row["stop_lon"] is None:
            continue
        try:
            lat, lon = float(row.required("stop_lat")), float(row.required("stop_lon"))
        except ValueError:
            raise FareRulesError(f"{row.where('stop_lat')}: not a number") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise FareRulesError(f"{row.where('stop_lat')}: ({lat}, {lon}) out of range")
        coordinates[row.required("stop_id")] = (lat, lon)
    return coordinates


def _agency_timezone(folder: Path) -> ZoneInfo:
    rows = list(read_rows(folder / "agency.txt", ("agency_timezone",)))
    zones = {row.required("agency_timezone") for row in rows}
    if len(zones) != 1:
        raise FareRulesError(f"agency.txt: expected one agency_timezone, found {sorted(zones)}")
    return ZoneInfo(zones.pop())


def _load_areas(folder: Path) -> dict[str, str | None]:
    path = folder / "areas.txt"
    if not path.exists():
        return {}
    return {row.required("area_id"): row["area_name"] for row in read_rows(path, ("area_id",))}


def _load_stop_areas(folder: Path, areas: dict[str, str | None]) -> dict[str, frozenset[str]]:
    path = folder / "stop_areas.txt"
    members: dict[str, set[str]] = defaultdict(set)
    if path.exists():
        for row in read_rows(path, ("area_id", "stop_id")):
            area_id = row.required("area_id")
            if area_id not in areas:
                raise FareRulesError(f"{row.where('area_id')}: {area_id!r} is not in areas.txt")
            members[row.required("stop_id")].add(area_id)
    return {stop: frozenset(found) for stop, found in members.items()}


def _load_rider_categories(folder: Path) -> dict[str, RiderCategory]:
    path = folder / "rider_categories.txt"
    if not path.exists():
        return {}
    categories = {}
    for row in read_rows(path, ("rider_category_id", "rider_category_name")):
        flag = row["is_default_fare_category"] or "0"
        if flag not in ("0", "1"):
            raise FareRulesError(f"{row.where('is_default_fare_category')}: {flag!r} is not 0, 1 or empty")
        category = RiderCategory(row.required("rider_category_id"), row.required("rider_category_name"), flag == "1")
        categories[category.rider_category_id] = category
    if sum(category.is_default for category in categories.values()) > 1:
        raise FareRulesError("rider_categories.txt: more than one default category")
    return categories


def _load_fare_media(folder: Path) -> dict[str, FareMedium]:
    path = folder / "fare_media.txt"
    if not path.exists():
        return {}
    media = {}
    for row in read_rows(path, ("fare_media_id", "fare_media_type")):
        kind = row.integer("fare_media_type", minimum=0)
        if kind > 4:
            raise FareRulesError(f"{row.where('fare_media_type')}: {kind} is not 0..4")
        medium = FareMedium(row.required("fare_media_id"), row["fare_media_name"], kind)
        media[medium.fare_media_id] = medium
    return media


def _load_products(folder: Path, categories: dict[str, RiderCategory],
                   media: dict[str, FareMedium]) -> tuple[dict[str, tuple[FareProduct, ...]], str]:
    rows_by_id: dict[str, list[FareProduct]] = defaultdict(list)
    currencies = set()
    for row in read_rows(folder / "fare_products.txt", ("fare_product_id", "amount", "currency")):
        category = row["rider_category_id"]
        if category is not None and category not in categories:
            raise FareRulesError(f"{row.where('rider_category_id')}: {category!r} is not in rider_categories.txt")
        medium = row["fare_media_id"]
        if medium is not None and medium not in media:
            raise FareRulesError(f"{row.where('fare_media_id')}: {medium!r} is not in fare_media.txt")
        currency = row.required("currency")
        currencies.add(currency)
        amount_minor = to_minor(row.required("amount"), currency, row.where("amount"), negative_ok=True)
        rows_by_id[row.required("fare_product_id")].append(
            FareProduct(row.required("fare_product_id"), row["fare_product_name"], category, medium, amount_minor, currency))
    if len(currencies) != 1:
        raise FareRulesError(f"fare_products.txt: expected one currency, found {sorted(currencies)}")
    return {key: tuple(value) for key, value in rows_by_id.items()}, currencies.pop()


def _load_timeframes(folder: Path) -> dict[str, tuple[Timeframe, ...]]:
    path = folder / "timeframes.txt"
    if not path.exists():
        return {}
    frames: dict[str, list[Timeframe]] = defaultdict(list)
    for row in read_rows(path, ("timeframe_group_id", "service_id")):
        if (row["start_time"] is None) != (row["end_time"] is None):
            raise FareRulesError(f"{row.where('start_time')}: start_time and end_time go together")
        frame = Timeframe(row.required("timeframe_group_id"), _time_s(row, "start_time", 0),
                          _time_s(row, "end_time", SECONDS_PER_DAY), row.required("service_id"))
        if frame.start_s >= frame.end_s:
            raise FareRulesError(f"{row.where('end_time')}: end_time must be after start_time")
        frames[frame.timeframe_group_id].append(frame)
    return {key: tuple(value) for key, value in frames.items()}


def _load_leg_rules(folder: Path, areas, products, timeframes) -> tuple[tuple[LegRule, ...], bool]:
    path = folder / "fare_leg_rules.txt"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = [cell.strip() for cell in next(csv.reader(handle), [])]
    has_priority = "rule_priority" in header
    rules = []
    for row in read_rows(path, ("fare_product_id",)):
        rule = LegRule(row["leg_group_id"], row["network_id"], row["from_area_id"], row["to_area_id"],
                       row["from_timeframe_group_id"], row["to_timeframe_group_id"],
                       row.required("fare_product_id"), row.integer("rule_priority", default=0, minimum=0))
        for field in ("from_area_id", "to_area_id"):
            if getattr(rule, field) is not None and getattr(rule, field) not in areas:
                raise FareRulesError(f"{row.where(field)}: {getattr(rule, field)!r} is not in areas.txt")
        for field in ("from_timeframe_group_id", "to_timeframe_group_id"):
            if getattr(rule, field) is not None and getattr(rule, field) not in timeframes:
                raise FareRulesError(f"{row.where(field)}: {getattr(rule, field)!r} is not in timeframes.txt")
        if rule.fare_product_id not in products:
            raise FareRulesError(f"{row.where('fare_product_id')}: {rule.fare_product_id!r} is not in fare_products.txt")
        rules.append(rule)
    return tuple(rules), has_priority


def _load_transfer_rules(folder: Path, leg_rules: tuple[LegRule, ...], products) -> tuple[TransferRule, ...]:
    path = folder / "fare_transfer_rules.txt"
    if not path.exists():
        return ()
    groups = {rule.leg_group_id for rule in leg_rules if rule.leg_group_id is not None}
    rules = []
    for row in read_rows(path, ("fare_transfer_type",)):
        for field in ("from_leg_group_id", "to_leg_group_id"):
            if row[field] is not None and row[field] not in groups:
                raise FareRulesError(f"{row.where(field)}: {row[field]!r} is not a leg_group_id of fare_leg_rules.txt")
        same = row["from_leg_group_id"] == row["to_leg_group_id"]
        count = row.integer("transfer_count", minimum=-1)
        if same and count is None:
            raise FareRulesError(f"{row.where('transfer_count')}: required when from and to leg groups are equal")
        if not same and count is not None:
            raise FareRulesError(f"{row.where('transfer_count')}: forbidden when from and to leg groups differ")
        kind = row.integer("fare_transfer_type", minimum=0)
        limit_type = row.integer("duration_limit_type", minimum=0)
        try:
            transfer_type = TransferType(kind)
            duration_type = DurationLimitType(limit_type) if limit_type is not None else None
        except ValueError as error:
            raise FareRulesError(f"{path.name}: {error}") from None
        product = row["fare_product_id"]
        if product is not None and product not in products:
            raise FareRulesError(f"{row.where('fare_product_id')}: {product!r} is not in fare_products.txt")
        rules.append(TransferRule(row["from_leg_group_id"], row["to_leg_group_id"], count,
                                  row.integer("duration_limit", minimum=1), duration_type, transfer_type, product))
    return tuple(rules)


__all__ = ["Calendar", "FareMedium", "FareProduct", "GtfsFares", "LegPrice", "LegRule", "RiderCategory",
           "Timeframe", "stop_coordinates"]
