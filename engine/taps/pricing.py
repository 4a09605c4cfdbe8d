"""The tap path's use of the fare engine (:mod:`engine.fares`) and the alert rules
(:mod:`engine.alerts`): the pure ``price`` and ``detect`` callables of
:func:`engine.taps.decision.decide`.

The card's fare and alert states are kept by the store as the JSON bytes these modules
define; a card without state starts from their empty state.

A late tap (older than the card's last priced tap: gates reporting over different
paths, an offline upload after online taps) is priced in its time position: the fare
engine re-prices the card's transit day from its day journal and the answer's fare is the
difference, negative for a refund (:mod:`engine.fares.pricing`, "Late taps"). A tap the
fare engine cannot price (unknown station, a tap kind the network does not take, a late
tap of an earlier transit day than the card's current one) is declined
``fare_unavailable``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from engine import alerts as rules
from engine.fares.errors import BadTapError, UnpriceableError
from engine.fares.pricing import FareEngine, TapFacts as FareTap, TapKind
from engine.fares.riders import RiderProfile
from engine.fares.state import CardFareState, decode_state, encode_state
from engine.taps.decision import CardState, Fare, RaisedAlert, TapFacts

_alert_state_encoder = msgspec.json.Encoder()
_alert_state_decoder = msgspec.json.Decoder(rules.AlertState)


class FarePricing:
    """Prices taps and runs the alert rules for one fare engine configuration."""

    def __init__(self, engine: FareEngine, thresholds: rules.AlertThresholds | None = None):
        self._engine = engine
        self._thresholds = thresholds or rules.AlertThresholds()
        self._distance = rules.distance_from({
            network_id: network.stations.distance_m
            for network_id, network in engine.networks.items() if hasattr(network, "stations")})

    def __repr__(self) -> str:
        return f"FarePricing(networks={sorted(self._engine.networks)})"

    def price(self, card: CardState, facts: TapFacts) -> Fare | None:
        """The fare of ``facts`` for ``card`` (``None`` when it cannot be priced); negative
        when a late tap's re-pricing lowers the card's day (a refund)."""
        state = decode_state(card.fare_state) if card.fare_state else CardFareState()
        tap = FareTap(tap_id=facts.tap_id, network_id=facts.network_id, station_id=facts.station,
                      kind=TapKind(facts.direction),
                      tapped_at_utc=facts.tapped_at.astimezone(timezone.utc),
                      rider=RiderProfile(birth_date=card.birth_date,
                                         entitlements=card.entitlements))
        try:
            priced = self._engine.price_tap(state, tap)
        except (UnpriceableError, BadTapError):
            return None
        return Fare(fare_minor=priced.fare_minor, rider_category=priced.rider_category_id,
                    day_total_minor=priced.day_total_minor,
                    day_cap_minor=priced.daily_cap_minor or 0,
                    transit_day=priced.transit_date.isoformat(),
                    fare_state=encode_state(priced.state))

    def missing_exit(self, card: CardState, now_utc: datetime) -> tuple[str, Fare] | None:
        """The maximum fare of the card's open entry once its journey time is over at
        ``now_utc`` (the daily close calls this): ``(entry tap_id, fare)``, else ``None``."""
        state = decode_state(card.fare_state) if card.fare_state else CardFareState()
        if state.open_entry is None:
            return None
        rider = RiderProfile(birth_date=card.birth_date, entitlements=card.entitlements)
        priced = self._engine.close_open_entry(state, now_utc, rider)
        if priced.state.open_entry is not None:
            return None
        return state.open_entry.tap_id, Fare(
            fare_minor=priced.fare_minor, rider_category=priced.rider_category_id,
            day_total_minor=priced.day_total_minor, day_cap_minor=priced.daily_cap_minor or 0,
            transit_day=priced.transit_date.isoformat(), fare_state=encode_state(priced.state))

    def detect(self, card: CardState, facts: TapFacts) -> tuple[tuple[RaisedAlert, ...], bytes]:
        """Alerts this tap raises, and the card's new alert state."""
        state = _alert_state_decoder.decode(card.alert_state) if card.alert_state else rules.AlertState()
        usage = rules.CardUsage(tap_id=facts.tap_id, card_token=card.card_token, atc=facts.atc,
                                arqc=facts.arqc.hex().upper(), network_id=facts.network_id,
                                station_id=facts.station,
                                tapped_at_utc=facts.tapped_at.astimezone(timezone.utc),
                                is_entry=facts.direction != "exit")
        raised, state = rules.check_usage(state, usage, self._thresholds, self._distance)
        alerts = tuple(RaisedAlert(kind=alert.type.value, card_token=alert.card_token,
                                   tap_id=alert.tap_id,
                                   detail=msgspec.json.encode(alert.evidence).decode())
                       for alert in raised)
        return alerts, _alert_state_encoder.encode(state)
