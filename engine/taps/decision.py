"""Deciding one tap: pure, no I/O (the store loads the card, the service verifies the ARQC).

Checks run in the priority order of :class:`~engine.taps.reasons.Reason` and the first
that fails is the answer. The function returns the decision together with the card's new
state and the alerts raised; the caller writes all of them, or none, in one transaction.
Pricing (:mod:`engine.fares`) and the alert rules (:mod:`engine.alerts`) come in as pure
callables, so this module is tested without a database, keys or fare tables.

ATC rule (EMV 4.4 Book 3, 9F36: the card increments its ATC on every transaction).
The card keeps the ``ATCS_REMEMBERED_MAX`` highest ATCs accepted, with their ARQCs. A
tap whose ATC is in that set is a replay (same ARQC) or a cloned card (different ARQC:
two chips share one key and counter); an ATC below the lowest remembered one, once the
set is full, is too old to tell and is declined. Any other ATC is new, even if lower than
the highest (offline uploads arrive out of order).

Alert rules run on every tap whose cryptogram verified for an enrolled card, declined or
not (a replayed ATC with a new ARQC is exactly the clone signal); the fare is priced only
for taps that pass every check before it.
"""

from __future__ import annotations

import bisect
from datetime import date, datetime
from typing import Callable

import msgspec
from msgspec.structs import replace

from engine.taps.reasons import DENY_REASONS, Reason

ATCS_REMEMBERED_MAX = 32
ATC_MAX = 0xFFFF
CURRENCY_CNY = 156
assert 1 <= ATCS_REMEMBERED_MAX <= 1024


class TapFacts(msgspec.Struct, frozen=True):
    """What the decision needs from one tap, PAN already replaced by its token.

    ``atc`` is the 2-byte counter as an int; ``arqc`` 8 bytes; ``tapped_at`` is the
    gate's local time with its UTC offset; ``currency`` the ISO 4217 numeric code;
    ``network_id`` the fare network of the signing gate; ``gate_id`` the gate the tap
    names, which must be the signing device.
    """

    tap_id: str
    device_id: str
    gate_id: str
    network_id: str
    card_token: str
    atc: int
    arqc: bytes
    station: str
    direction: str
    tapped_at: datetime
    currency: int


class CardState(msgspec.Struct, frozen=True):
    """A card's transit state as stored, plus the deny-list reasons it is listed for.

    ``atcs_recent`` is sorted ascending with ``arqcs_recent`` in the same order;
    ``fare_state`` and ``alert_state`` are opaque bytes of the fare engine and the alert
    rules.
    """

    card_token: str
    account_id: int
    bank_code: str
    rider_category: str = ""
    birth_date: date | None = None
    entitlements: frozenset[str] = frozenset()
    atc_max: int = -1
    atcs_recent: tuple[int, ...] = ()
    arqcs_recent: tuple[bytes, ...] = ()
    fare_state: bytes | None = None
    alert_state: bytes | None = None
    deny_reasons: frozenset[str] = frozenset()


class Fare(msgspec.Struct, frozen=True):
    """The fare engine's answer for one tap (minor units; ``transit_day`` ISO date;
    ``day_cap_minor`` 0 when there is no daily cap). ``fare_minor`` is negative only for a
    late tap whose re-pricing of the day refunds the card."""

    fare_minor: int
    rider_category: str
    day_total_minor: int
    day_cap_minor: int
    transit_day: str
    fare_state: bytes


class RaisedAlert(msgspec.Struct, frozen=True):
    kind: str
    card_token: str | None
    tap_id: str
    detail: str


class Decision(msgspec.Struct, frozen=True):
    """Outcome of :func:`decide`: the reason, the fare (approved only), the card's new state
    (``None`` when nothing about the card changes) and alerts to store."""

    reason: Reason
    fare: Fare | None = None
    card: CardState | None = None
    alerts: tuple[RaisedAlert, ...] = ()


# price(card, facts) -> Fare, or None when the fare engine cannot price the tap.
Pricer = Callable[[CardState, TapFacts], "Fare | None"]
# detect(card, facts) -> (alerts raised, the card's new alert_state).
Detector = Callable[[CardState, TapFacts], "tuple[tuple[RaisedAlert, ...], bytes | None]"]


def no_alerts(card: CardState, facts: TapFacts) -> tuple[tuple[RaisedAlert, ...], bytes | None]:
    """A :data:`Detector` that raises nothing (tests, or alert rules switched off)."""
    return (), card.alert_state


def decide(card: CardState | None, facts: TapFacts, *, arqc_failure: Reason | None,
           price: Pricer, detect: Detector = no_alerts) -> Decision:
    """Decide one tap.

    Parameters
    ----------
    card : the card's stored state, ``None`` when the card is not enrolled.
    facts : the tap.
    arqc_failure : ``None`` when the key service verified the ARQC (EMV 4.4 Book 2,
        A1.2), else why not (``arqc_invalid``, ``tap_invalid``, ``card_unknown``).
    price : the fare engine (pure).
    detect : the alert rules (pure).

    >>> from datetime import timezone
    >>> card = CardState("tok", 1, "BANK")
    >>> facts = TapFacts("t1", "g1", "g1", "metro", "tok", 5, bytes(8), "S1", "entry",
    ...                  datetime(2026, 1, 1, tzinfo=timezone.utc), 156)
    >>> fare = Fare(200, "adult", 200, 1500, "2026-01-01", b"")
    >>> decision = decide(card, facts, arqc_failure=None, price=lambda c, f: fare)
    >>> decision.reason.name, decision.card.atcs_recent
    ('approved', (5,))
    >>> decide(decision.card, facts, arqc_failure=None, price=lambda c, f: fare).reason.name
    'atc_replayed'
    """
    assert facts.card_token, "the card token is set before deciding"
    assert arqc_failure is not Reason.approved
    if facts.currency != CURRENCY_CNY or facts.gate_id != facts.device_id:
        return Decision(Reason.tap_invalid)
    if arqc_failure is not None:
        return Decision(arqc_failure)
    if card is None:
        return Decision(Reason.card_unknown)
    assert card.card_token == facts.card_token
    alerts, alert_state = detect(card, facts)
    watched = replace(card, alert_state=alert_state)
    atc_reason = _check_atc(card, facts)
    if atc_reason is not None:
        return Decision(atc_reason, card=watched, alerts=alerts)
    seen = _remember_atc(watched, facts)
    if card.deny_reasons:
        return Decision(min(DENY_REASONS[reason] for reason in card.deny_reasons), card=seen,
                        alerts=alerts)
    fare = price(seen, facts)
    if fare is None:
        return Decision(Reason.fare_unavailable, card=seen, alerts=alerts)
    assert fare.day_total_minor >= 0 and fare.day_total_minor >= fare.fare_minor
    return Decision(Reason.approved, fare=fare, alerts=alerts,
                    card=replace(seen, fare_state=fare.fare_state,
                                 rider_category=fare.rider_category))


def _check_atc(card: CardState, facts: TapFacts) -> Reason | None:
    index = bisect.bisect_left(card.atcs_recent, facts.atc)
    if index < len(card.atcs_recent) and card.atcs_recent[index] == facts.atc:
        same = card.arqcs_recent[index] == facts.arqc
        return Reason.atc_replayed if same else Reason.atc_cloned
    if len(card.atcs_recent) >= ATCS_REMEMBERED_MAX and index == 0:
        return Reason.atc_too_old
    return None


def _remember_atc(card: CardState, facts: TapFacts) -> CardState:
    index = bisect.bisect_left(card.atcs_recent, facts.atc)
    atcs = card.atcs_recent[:index] + (facts.atc,) + card.atcs_recent[index:]
    arqcs = card.arqcs_recent[:index] + (facts.arqc,) + card.arqcs_recent[index:]
    excess = len(atcs) - ATCS_REMEMBERED_MAX
    if excess > 0:
        atcs, arqcs = atcs[excess:], arqcs[excess:]
    assert list(atcs) == sorted(set(atcs)) and len(atcs) == len(arqcs)
    return replace(card, atc_max=max(card.atc_max, facts.atc), atcs_recent=atcs,
                   arqcs_recent=arqcs)
