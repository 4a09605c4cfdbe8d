"""Fare networks: how one network prices a leg (distance bands, a GTFS feed, or a flat fare).

Each network says how its taps pair up (:class:`Pairing`): metro gates tap on entry and
exit (``ENTRY_EXIT``); buses and trams take one tap per ride (``SINGLE``). Every network
prices a leg to a :class:`LegFare` (full fare and the rider's fare in minor units) and
knows its maximum fare, charged for a missing exit or an exit without entry.

Lookup tables are built at construction; pricing a leg is dictionary lookups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from engine.fares.bands import DistanceBands
from engine.fares.errors import FareRulesError, UnpriceableError
from engine.fares.gtfs import GtfsFares
from engine.fares.riders import RiderCategoryRule
from engine.fares.stations import StationNetwork


class Pairing(enum.StrEnum):
    """How a network's taps form legs."""

    ENTRY_EXIT = "entry_exit"
    SINGLE = "single"


class FareSource(enum.StrEnum):
    """Which kind of rule priced a leg (reported in the tap's applied rules)."""

    DISTANCE = "distance_fare"
    GTFS = "gtfs_fare"
    FLAT = "flat_fare"


@dataclass(frozen=True, slots=True)
class LegFare:
    """A priced leg: ``full_minor`` for a regular rider, ``fare_minor`` for this rider.

    ``leg_group_id`` identifies the leg for transfer rules (the network id unless a GTFS
    feed names a ``leg_group_id``); ``detail`` says what the price rests on (distance in
    metres, fare product id).
    """

    full_minor: int
    fare_minor: int
    leg_group_id: str
    source: FareSource
    detail: str


class DistanceFareNetwork:
    """A metro priced by shortest track distance in distance bands (e.g. Chengdu)."""

    pairing = Pairing.ENTRY_EXIT

    def __init__(self, network_id: str, stations: StationNetwork, bands: DistanceBands) -> None:
        self.network_id = network_id
        self.stations = stations
        self.currency = bands.currency
        # Whole origin-destination fare matrix at load: the hot path is one dict lookup.
        self._full_minor: dict[tuple[str, str], tuple[int, int]] = {}
        for origin in stations.stations:
            for destination in stations.stations:
                distance_m = stations.distance_m(origin, destination)
                try:
                    fare = bands.fare_minor(distance_m)
                except UnpriceableError as error:
                    raise FareRulesError(f"network {network_id}: {origin} -> {destination}: {error}") from None
                self._full_minor[origin, destination] = (fare, distance_m)
        self.max_fare_minor = max(fare for fare, _ in self._full_minor.values())

    def leg_fare(self, from_station_id: str, to_station_id: str | None, departure_at: datetime,
                 arrival_at: datetime, category: RiderCategoryRule) -> LegFare:
        """Price an entry at ``from_station_id`` and exit at ``to_station_id``.

        Raises
        ------
        UnpriceableError
            A station is not in this network, or no exit station was given.
        """
        if to_station_id is None:
            raise UnpriceableError(f"network {self.network_id}: a distance fare needs an exit station")
        try:
            full, distance_m = self._full_minor[from_station_id, to_station_id]
        except KeyError:
            self.stations.distance_m(from_station_id, to_station_id)
            raise
        return LegFare(full, category.concession_minor(full), self.network_id, FareSource.DISTANCE, f"{distance_m} m")

    def has_station(self, station_id: str) -> bool:
        return station_id in self.stations.stations


class FlatFareNetwork:
    """A bus or tram network with one flat fare per boarding (single tap)."""

    pairing = Pairing.SINGLE

    def __init__(self, network_id: str, fare_minor: int, currency: str) -> None:
        if fare_minor < 0:
            raise FareRulesError(f"network {network_id}: flat fare must not be negative")
        self.network_id = network_id
        self.max_fare_minor = fare_minor
        self.currency = currency

    def leg_fare(self, from_station_id: str, to_station_id: str | None, departure_at: datetime,
                 arrival_at: datetime, category: RiderCategoryRule) -> LegFare:
        """The flat fare (any stop of the network)."""
        full = self.max_fare_minor
        return LegFare(full, category.concession_minor(full), self.network_id, FareSource.FLAT, "flat")

    def has_station(self, station_id: str) -> bool:
        return True


class GtfsFareNetwork:
    """A network priced by a GTFS-Fares v2 feed (zones, timeframes, rider categories).

    A rider category with ``gtfs_rider_category_id`` is priced by the feed's products for
    that category; other categories pay their ``fare_percent`` of the feed's regular fare.
    """

    def __init__(self, network_id: str, feed: GtfsFares, pairing: Pairing,
                 gtfs_network_id: str | None = None, fare_media_id: str | None = None) -> None:
        self.network_id = network_id
        self.feed = feed
        self.pairing = pairing
        self.currency = feed.currency
        self.gtfs_network_id = gtfs_network_id
        self.fare_media_id = fare_media_id
        priced = []
        for rule in feed.leg_rules:
            try:
                priced.append(feed.product_amount(rule.fare_product_id, None, fare_media_id))
            except UnpriceableError:
                continue  # a product only some riders or media can buy: not a regular fare
        if not priced:
            raise FareRulesError(f"network {network_id}: the feed's fare_leg_rules price nothing")
        self.max_fare_minor = max(priced)

    def leg_fare(self, from_station_id: str, to_station_id: str | None, departure_at: datetime,
                 arrival_at: datetime, category: RiderCategoryRule) -> LegFare:
        """Price the leg from the feed (see :meth:`GtfsFares.price_leg`).

        Raises
        ------
        UnpriceableError
            Unknown stop, or no fare leg rule matches.
        """
        regular = self.feed.price_leg(from_station_id, to_station_id, departure_at, arrival_at,
                                      fare_media_id=self.fare_media_id, network_id=self.gtfs_network_id)
        if category.gtfs_rider_category_id is not None:
            own = self.feed.price_leg(from_station_id, to_station_id, departure_at, arrival_at,
                                      rider_category_id=category.gtfs_rider_category_id,
                                      fare_media_id=self.fare_media_id, network_id=self.gtfs_network_id)
            fare = min(own.amount_minor, regular.amount_minor)
        else:
            fare = category.concession_minor(regular.amount_minor)
        group = regular.leg_group_id if regular.leg_group_id is not None else self.network_id
        return LegFare(regular.amount_minor, fare, group, FareSource.GTFS, regular.fare_product_id)

    def has_station(self, station_id: str) -> bool:
        return station_id in self.feed.stop_areas


FareNetwork = DistanceFareNetwork | FlatFareNetwork | GtfsFareNetwork
