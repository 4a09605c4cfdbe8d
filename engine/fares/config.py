"""Loading a :class:`~engine.fares.pricing.FareEngine` from a TOML configuration.

The packaged ``engine/fares/data/chengdu.toml`` is the reference example (documented in
its comments). Keys:

- ``currency``, ``timezone`` (IANA), ``day_boundary`` (``HH:MM`` local),
  ``journey_max_minutes``, ``reentry_grace_seconds``, ``rider_rules`` (path), ``[caps]`` ``daily``/``weekly``
  (decimal amounts) and ``week_starts_on``;
- ``[[network]]`` with ``id`` and ``kind``: ``distance`` (``stations`` CSV, ``bands``
  CSV), ``flat`` (``fare``), or ``gtfs`` (``feed`` folder, ``pairing`` =
  ``entry_exit``/``single``, optional ``gtfs_network_id``, ``fare_media_id``); a GTFS
  feed's own ``fare_transfer_rules`` are added to the engine's;
- ``[[transfer]]``: the fields of ``fare_transfer_rules.txt`` plus ``amount`` (decimal) of
  its ``fare_product_id``.

Paths are relative to the configuration file; ``{shared_data}`` stands for the
``shared_data`` argument (the reference data folder).
"""

from __future__ import annotations

import tomllib
from datetime import time
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.fares.bands import DistanceBands
from engine.fares.errors import FareRulesError
from engine.fares.gtfs import GtfsFares
from engine.fares.money import to_minor
from engine.fares.networks import DistanceFareNetwork, FareNetwork, FlatFareNetwork, GtfsFareNetwork, Pairing
from engine.fares.pricing import Caps, FareEngine
from engine.fares.riders import RiderRules
from engine.fares.stations import StationNetwork
from engine.fares.transfers import DurationLimitType, TransferRule, TransferType

TOP_KEYS = {"currency", "timezone", "day_boundary", "journey_max_minutes", "reentry_grace_seconds", "rider_rules", "caps",
            "network", "transfer"}


def packaged_config(name: str = "chengdu.toml") -> Path:
    """Path of a configuration shipped in ``engine/fares/data``."""
    return Path(str(resources.files("engine.fares").joinpath("data", name)))


def load_engine(path: Path | None = None, *, shared_data: Path | None = None) -> FareEngine:
    """Build a fare engine from the TOML file at ``path`` (default: the Chengdu demo).

    Raises
    ------
    FareRulesError
        Unknown keys, bad values, ``{shared_data}`` used without ``shared_data``, or any
        error of the files it names (each message names the file and field).
    """
    path = Path(path) if path is not None else packaged_config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FareRulesError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise FareRulesError(f"{path.name}: {error}") from None
    unknown = set(document) - TOP_KEYS
    if unknown:
        raise FareRulesError(f"{path.name}: unknown key(s) {sorted(unknown)}")

    def resolve(text: str, field: str) -> Path:
        if "{shared_data}" in text:
            if shared_data is None:
                raise FareRulesError(f"{path.name} {field}: uses {{shared_data}} but no shared_data folder was given")
            text = text.replace("{shared_data}", str(shared_data))
        candidate = Path(text)
        return candidate if candidate.is_absolute() else path.parent / candidate

    currency = _required(document, "currency", path.name)
    try:
        timezone = ZoneInfo(_required(document, "timezone", path.name))
    except (ZoneInfoNotFoundError, ValueError):
        raise FareRulesError(f"{path.name} timezone: {document['timezone']!r} is not an IANA zone") from None
    try:
        boundary = time.fromisoformat(document.get("day_boundary", "04:30"))
    except ValueError:
        raise FareRulesError(f"{path.name} day_boundary: {document['day_boundary']!r} is not HH:MM") from None
    riders = RiderRules.load(resolve(document["rider_rules"], "rider_rules")) if "rider_rules" in document else RiderRules.load()
    raw_caps = document.get("caps", {})
    caps = Caps(
        daily_minor=to_minor(raw_caps["daily"], currency, f"{path.name} caps.daily") if "daily" in raw_caps else None,
        weekly_minor=to_minor(raw_caps["weekly"], currency, f"{path.name} caps.weekly") if "weekly" in raw_caps else None,
        week_starts_on=raw_caps.get("week_starts_on", 1),
    )
    networks: dict[str, FareNetwork] = {}
    transfer_rules: list[TransferRule] = []
    for index, raw in enumerate(document.get("network", ()), start=1):
        where = f"{path.name} network {index}"
        network_id = _required(raw, "id", where)
        kind = _required(raw, "kind", where)
        if network_id in networks:
            raise FareRulesError(f"{where} id: {network_id!r} appears twice")
        if kind == "distance":
            network: FareNetwork = DistanceFareNetwork(
                network_id, StationNetwork.load(resolve(_required(raw, "stations", where), f"{where} stations")),
                DistanceBands.load(resolve(_required(raw, "bands", where), f"{where} bands")))
        elif kind == "flat":
            network = FlatFareNetwork(network_id, to_minor(_required(raw, "fare", where), currency, f"{where} fare"), currency)
        elif kind == "gtfs":
            feed = GtfsFares.load(resolve(_required(raw, "feed", where), f"{where} feed"))
            try:
                pairing = Pairing(raw.get("pairing", "entry_exit"))
            except ValueError:
                raise FareRulesError(f"{where} pairing: {raw['pairing']!r} is not entry_exit or single") from None
            network = GtfsFareNetwork(network_id, feed, pairing, raw.get("gtfs_network_id"), raw.get("fare_media_id"))
            transfer_rules.extend(feed.transfer_rules)
        else:
            raise FareRulesError(f"{where} kind: {kind!r} is not distance, flat or gtfs")
        if network.currency != currency:
            raise FareRulesError(f"{where}: currency {network.currency} differs from {currency}")
        networks[network_id] = network
    if not networks:
        raise FareRulesError(f"{path.name}: no [[network]]")
    products: dict[str, int] = {}
    for index, raw in enumerate(document.get("transfer", ()), start=1):
        where = f"{path.name} transfer {index}"
        rule = _transfer_rule(raw, where)
        if rule.fare_product_id is not None:
            products[rule.fare_product_id] = to_minor(_required(raw, "amount", where), currency,
                                                      f"{where} amount", negative_ok=True)
        transfer_rules.append(rule)
    return FareEngine(networks, riders, timezone=timezone, day_boundary=boundary, caps=caps,
                      transfer_rules=transfer_rules, transfer_products=products,
                      journey_max_s=int(document.get("journey_max_minutes", 240)) * 60,
                      reentry_grace_s=int(document.get("reentry_grace_seconds", 120)))


def _required(table: dict, key: str, where: str):
    if key not in table:
        raise FareRulesError(f"{where}: {key} is required")
    return table[key]


def _transfer_rule(raw: dict, where: str) -> TransferRule:
    allowed = {"from_leg_group_id", "to_leg_group_id", "transfer_count", "duration_limit_s", "duration_limit_type",
               "fare_transfer_type", "fare_product_id", "amount"}
    unknown = set(raw) - allowed
    if unknown:
        raise FareRulesError(f"{where}: unknown key(s) {sorted(unknown)}")
    try:
        kind = TransferType(_required(raw, "fare_transfer_type", where))
        limit_type = DurationLimitType(raw["duration_limit_type"]) if "duration_limit_type" in raw else None
    except ValueError as error:
        raise FareRulesError(f"{where}: {error}") from None
    return TransferRule(raw.get("from_leg_group_id"), raw.get("to_leg_group_id"), raw.get("transfer_count"),
                        raw.get("duration_limit_s"), limit_type, kind, raw.get("fare_product_id"))
