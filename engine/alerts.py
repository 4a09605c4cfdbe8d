"""Abnormal-usage alert rules: pure detectors over a card's recent usage.

Each detector looks at one new card usage (a tap with its EMV counters) against the
card's :class:`AlertState` and returns an :class:`Alert` value or ``None``; the tap API
stores, lists and counts the alerts. Thresholds are configuration
(:class:`AlertThresholds`, from TOML or a mapping), never constants in code.

=====================  ==============================================================
alert                  raised when
=====================  ==============================================================
``atc_jump``           ATC rose by more than ``atc_jump_max`` over the card's highest
                       (many transactions unseen here: a clone in use elsewhere, or
                       a long offline run)
``cloned_card``        an ATC seen before comes with a different ARQC (two cards
                       sharing one counter: EMV cryptograms never repeat per ATC)
``impossible_travel``  two entries at stations farther apart than a rider can go at
                       ``travel_speed_kmh_max`` in the time between them (and at least
                       ``travel_distance_m_min`` apart, so clock skew at neighbouring
                       stations does not count)
``tap_burst``          more than ``burst_taps_max`` taps within ``burst_window_s``
=====================  ==============================================================

Declining a replayed ATC is the decision path's job; these rules only raise alerts.
"""

from __future__ import annotations

import enum
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import msgspec

from engine.errors import EngineError

# Cryptograms and tap times kept per card for the clone and burst rules.
RECENT_CRYPTOGRAMS_MAX = 32
RECENT_TAPS_MAX = 64
EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
# Environment variables overriding one threshold each: ONECARD_ALERT_<FIELD IN CAPITALS>.
ENV_PREFIX = "ONECARD_ALERT_"
# Any threshold above this is a typo (a billion taps, metres, seconds or km/h).
THRESHOLD_MAX = 10**9


class AlertError(EngineError, ValueError):
    """Alert thresholds or a usage record are invalid (unknown key, wrong type, out of range)."""


class AlertType(enum.StrEnum):
    """Kinds of alert (stored and counted by this name)."""

    ATC_JUMP = "atc_jump"
    CLONED_CARD = "cloned_card"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    TAP_BURST = "tap_burst"


class AlertThresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Alert thresholds (defaults are starting points to tune against real traffic)."""

    atc_jump_max: int = 50
    travel_speed_kmh_max: int = 120
    travel_distance_m_min: int = 2_000
    burst_taps_max: int = 6
    burst_window_s: int = 60

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if not 0 < getattr(self, name) <= THRESHOLD_MAX:
                raise AlertError(f"alert thresholds {name}: must be 1 to {THRESHOLD_MAX}")
        if self.burst_taps_max >= RECENT_TAPS_MAX:
            raise AlertError(f"alert thresholds burst_taps_max: must be below {RECENT_TAPS_MAX}")

    @classmethod
    def load(cls, path: Path) -> "AlertThresholds":
        """Read thresholds from the ``[alerts]`` table of a TOML file.

        Raises
        ------
        AlertError
            Not UTF-8, bad TOML, no ``[alerts]`` table, unknown key, wrong type or a value
            out of range.
        """
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise AlertError(f"{Path(path).name}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as error:
            raise AlertError(f"{Path(path).name}: {error}") from None
        if not isinstance(document.get("alerts"), dict):
            raise AlertError(f"{Path(path).name}: no [alerts] table (tables found: "
                             f"{', '.join(sorted(document)) or 'none'})")
        try:
            return msgspec.convert(document["alerts"], cls)
        except msgspec.ValidationError as error:
            raise AlertError(f"{Path(path).name} [alerts]: {error}") from None

    @classmethod
    def configured(cls, path: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> "AlertThresholds":
        """The thresholds ``onecard serve`` runs with: the ``[alerts]`` table of ``path``
        (defaults when ``None``), then one override per environment variable
        ``ONECARD_ALERT_<FIELD>`` (``environ``, default ``os.environ``).

        >>> AlertThresholds.configured(environ={"ONECARD_ALERT_BURST_TAPS_MAX": "8"}).burst_taps_max
        8
        >>> AlertThresholds.configured(environ={"ONECARD_ALERT_BURST_WINDOW_S": "0"})
        Traceback (most recent call last):
        ...
        engine.alerts.AlertError: ONECARD_ALERT_BURST_WINDOW_S: alert thresholds burst_window_s: must be 1 to 1000000000

        Raises
        ------
        AlertError
            A bad file (see :meth:`load`), an unknown ``ONECARD_ALERT_*`` variable, or a
            variable that is not a whole number or out of range (the message names it).
        OSError
            ``path`` cannot be read.
        """
        thresholds = cls.load(path) if path is not None else cls()
        environ = os.environ if environ is None else environ
        fields = {ENV_PREFIX + name.upper(): name for name in cls.__struct_fields__}
        for variable in sorted(key for key in environ if key.startswith(ENV_PREFIX)):
            name = fields.get(variable)
            if name is None:
                raise AlertError(f"{variable}: unknown alert threshold (known: {', '.join(fields)})")
            text = environ[variable].strip()
            if not (text.isascii() and text.isdigit()):
                raise AlertError(f"{variable}: {text!r} is not a whole number")
            try:
                thresholds = msgspec.convert(msgspec.structs.asdict(thresholds) | {name: int(text)}, cls)
            except msgspec.ValidationError as error:
                raise AlertError(f"{variable}: {error}") from None
        return thresholds


class CardUsage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tap as the alert rules see it.

    ``atc`` is the 2-byte application transaction counter (EMV tag 9F36, 0..65535),
    ``arqc`` the 8-byte cryptogram (tag 9F26) as hex, ``is_entry`` whether the tap
    starts a ride (an entry gate or a single-tap reader).
    """

    tap_id: str
    card_token: str
    atc: int
    arqc: str
    network_id: str
    station_id: str
    tapped_at_utc: datetime
    is_entry: bool = True


class LastEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where and when the card last started a ride."""

    network_id: str
    station_id: str
    at_utc: datetime


class AlertState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the rules remember per card (bounded: see the ``*_MAX`` limits)."""

    highest_atc: int | None = None
    recent_cryptograms: tuple[tuple[int, str], ...] = ()
    recent_taps_utc: tuple[datetime, ...] = ()
    last_entry: LastEntry | None = None


class Alert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An alert: its type, the card, the tap that raised it and the evidence (values only,
    never key material)."""

    type: AlertType
    card_token: str
    tap_id: str
    at_utc: datetime
    evidence: dict[str, str | int]


# (network_id, station_id) -> (network_id, station_id) -> metres, or None when unknown.
Distance = Callable[[tuple[str, str], tuple[str, str]], int | None]


def atc_jump(state: AlertState, usage: CardUsage, thresholds: AlertThresholds) -> Alert | None:
    """Alert when ``usage.atc`` exceeds the card's highest ATC by more than ``atc_jump_max``."""
    if state.highest_atc is None or usage.atc - state.highest_atc <= thresholds.atc_jump_max:
        return None
    return Alert(AlertType.ATC_JUMP, usage.card_token, usage.tap_id, usage.tapped_at_utc,
                 {"highest_atc": state.highest_atc, "atc": usage.atc, "jump": usage.atc - state.highest_atc,
                  "atc_jump_max": thresholds.atc_jump_max})


def cloned_card(state: AlertState, usage: CardUsage) -> Alert | None:
    """Alert when an ATC seen before arrives with a different ARQC (hex case ignored)."""
    arqc = usage.arqc.upper()
    for atc, seen_arqc in state.recent_cryptograms:
        if atc == usage.atc and seen_arqc != arqc:
            return Alert(AlertType.CLONED_CARD, usage.card_token, usage.tap_id, usage.tapped_at_utc,
                         {"atc": atc, "arqc_seen": seen_arqc, "arqc_now": arqc})
    return None


def impossible_travel(state: AlertState, usage: CardUsage, distance_m: Distance,
                      thresholds: AlertThresholds) -> Alert | None:
    """Alert when this entry is too far from the last entry for the time between them.

    ``distance_m`` gives metres between two ``(network_id, station_id)``; ``None`` (no
    coordinates known) never raises an alert. The time between them counts either way: a
    late entry (older than the last, e.g. from an offline upload) is compared as if it had
    arrived in time order.
    """
    last = state.last_entry
    if not usage.is_entry or last is None:
        return None
    metres = distance_m((last.network_id, last.station_id), (usage.network_id, usage.station_id))
    if metres is None or metres < thresholds.travel_distance_m_min:
        return None
    seconds = abs((usage.tapped_at_utc - last.at_utc).total_seconds())
    # Possible at the speed limit: metres <= speed (m/s) * seconds.
    if metres * 3600 <= thresholds.travel_speed_kmh_max * 1000 * seconds:
        return None
    return Alert(AlertType.IMPOSSIBLE_TRAVEL, usage.card_token, usage.tap_id, usage.tapped_at_utc,
                 {"from_station": f"{last.network_id}/{last.station_id}",
                  "to_station": f"{usage.network_id}/{usage.station_id}",
                  "distance_m": metres, "seconds": int(seconds),
                  "travel_speed_kmh_max": thresholds.travel_speed_kmh_max})


def tap_burst(state: AlertState, usage: CardUsage, thresholds: AlertThresholds) -> Alert | None:
    """Alert when this tap makes more than ``burst_taps_max`` taps within ``burst_window_s``."""
    window = [at for at in state.recent_taps_utc
              if 0 <= (usage.tapped_at_utc - at).total_seconds() < thresholds.burst_window_s]
    count = len(window) + 1
    if count <= thresholds.burst_taps_max:
        return None
    return Alert(AlertType.TAP_BURST, usage.card_token, usage.tap_id, usage.tapped_at_utc,
                 {"taps": count, "window_s": thresholds.burst_window_s, "burst_taps_max": thresholds.burst_taps_max})


def check_usage(state: AlertState, usage: CardUsage, thresholds: AlertThresholds,
                distance_m: Distance) -> tuple[tuple[Alert, ...], AlertState]:
    """Run every rule on ``usage``; return the alerts raised and the card's new state.

    >>> from datetime import timezone
    >>> at = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    >>> first = CardUsage("t1", "card", 7, "1122334455667788", "metro", "a", at)
    >>> alerts, state = check_usage(AlertState(), first, AlertThresholds(), lambda a, b: None)
    >>> clone = msgspec.structs.replace(first, tap_id="t2", arqc="99AABBCCDDEEFF00")
    >>> [alert.type.value for alert in check_usage(state, clone, AlertThresholds(), lambda a, b: None)[0]]
    ['cloned_card']
    """
    if not 0 <= usage.atc <= 0xFFFF:
        raise AlertError(f"atc: {usage.atc} is not a 2-byte counter")
    found = (atc_jump(state, usage, thresholds), cloned_card(state, usage),
             impossible_travel(state, usage, distance_m, thresholds), tap_burst(state, usage, thresholds))
    pair = (usage.atc, usage.arqc.upper())
    cryptograms = state.recent_cryptograms if pair in state.recent_cryptograms else (
        state.recent_cryptograms + (pair,))[-RECENT_CRYPTOGRAMS_MAX:]
    new_state = AlertState(
        highest_atc=usage.atc if state.highest_atc is None else max(state.highest_atc, usage.atc),
        recent_cryptograms=cryptograms,
        recent_taps_utc=(state.recent_taps_utc + (usage.tapped_at_utc,))[-RECENT_TAPS_MAX:],
        last_entry=LastEntry(usage.network_id, usage.station_id, usage.tapped_at_utc)
        if usage.is_entry and (state.last_entry is None or usage.tapped_at_utc >= state.last_entry.at_utc)
        else state.last_entry,
    )
    return tuple(alert for alert in found if alert is not None), new_state


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> int:
    """Great-circle distance in whole metres between two (latitude, longitude) in degrees.

    >>> haversine_m((52.5163, 20.6081), (52.5163, 20.6081))
    0
    """
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return round(2 * EARTH_RADIUS_M * math.asin(math.sqrt(h)))


def distance_from(networks: Mapping[str, Callable[[str, str], int]] | None = None,
                  coordinates: Mapping[tuple[str, str], tuple[float, float]] | None = None) -> Distance:
    """A :data:`Distance` from per-network track distances and/or station coordinates.

    Within one network with a track-distance function (e.g.
    ``StationNetwork.distance_m``) that distance is used; otherwise the great-circle
    distance when both stations have coordinates; otherwise ``None``.
    """
    networks = dict(networks or {})
    coordinates = dict(coordinates or {})

    def distance_m(a: tuple[str, str], b: tuple[str, str]) -> int | None:
        if a[0] == b[0] and a[0] in networks:
            try:
                return networks[a[0]](a[1], b[1])
            except LookupError:
                return None
        if a in coordinates and b in coordinates:
            return haversine_m(coordinates[a], coordinates[b])
        return None

    return distance_m
