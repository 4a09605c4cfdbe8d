"""The pure tap decision: reason priority, ATC memory, deny list, pricing hand-off."""

from __future__ import annotations

from msgspec.structs import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from engine.taps.decision import (ATCS_REMEMBERED_MAX, CardState, Decision, Fare, RaisedAlert,
                                  TapFacts, decide)
from engine.taps.reasons import PRIORITY, Reason

AT = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)
CARD = CardState("tok", 1, "ICBC")
FARE = Fare(300, "adult", 300, 2000, "2026-11-30", b"{}")


def facts(atc=5, arqc=b"\x01" * 8, **changes) -> TapFacts:
    base = TapFacts("t1", "g1", "g1", "metro", "tok", atc, arqc, "S1", "exit", AT, 156)
    return replace(base, **changes)


def price(card, tap):
    return FARE


def never_priced(card, tap):
    raise AssertionError("a declined tap is not priced")


@pytest.mark.parametrize(
    "card, tap, arqc_failure, reason",
    [
        (CARD, facts(), None, Reason.approved),
        (CARD, facts(currency=840), None, Reason.tap_invalid),
        (CARD, facts(gate_id="g2"), None, Reason.tap_invalid),
        # Priority: an invalid tap beats a failed cryptogram, which beats the deny list.
        (replace(CARD, deny_reasons=frozenset({"lost"})), facts(currency=840),
         Reason.arqc_invalid, Reason.tap_invalid),
        (replace(CARD, deny_reasons=frozenset({"lost"})), facts(), Reason.arqc_invalid,
         Reason.arqc_invalid),
        (None, facts(), None, Reason.card_unknown),
        (None, facts(), Reason.card_unknown, Reason.card_unknown),
        (replace(CARD, deny_reasons=frozenset({"unpaid_debt", "closed"})), facts(), None,
         Reason.card_closed),
        (replace(CARD, atcs_recent=(5,), arqcs_recent=(b"\x01" * 8,),
                 deny_reasons=frozenset({"lost"})), facts(), None, Reason.atc_replayed),
        (replace(CARD, atcs_recent=(5,), arqcs_recent=(b"\x02" * 8,)), facts(), None,
         Reason.atc_cloned),
        (replace(CARD, atcs_recent=tuple(range(10, 10 + ATCS_REMEMBERED_MAX)),
                 arqcs_recent=(bytes(8),) * ATCS_REMEMBERED_MAX), facts(atc=9), None,
         Reason.atc_too_old),
    ],
)
def test_reasons_in_priority_order(card, tap, arqc_failure, reason):
    priced = price if reason is Reason.approved else never_priced
    assert decide(card, tap, arqc_failure=arqc_failure, price=priced).reason is reason


SEEN = replace(CARD, atc_max=4, atcs_recent=(4,), arqcs_recent=(b"\x04" * 8,),
               fare_state=b'{"day":"2026-11-30"}', alert_state=b"alerts",
               rider_category="adult")


@pytest.mark.parametrize("ahead", [timedelta(seconds=1), timedelta(days=183)])
def test_tap_dated_after_the_server_clock_and_skew_changes_nothing(ahead):
    """The tester's case: a valid cryptogram dated 2027-06-01 at a server on 2026-12-01."""
    alarm = RaisedAlert("tap_burst", "tok", "t1", "{}")
    decision = decide(SEEN, facts(tapped_at=AT + ahead), arqc_failure=None, price=never_priced,
                      detect=lambda c, f: ((alarm,), b"moved"), tapped_at_max=AT)
    assert decision == Decision(Reason.tap_in_future)  # no fare, no card change, no alert


def test_tap_within_the_skew_is_decided_as_usual():
    decision = decide(SEEN, facts(tapped_at=AT), arqc_failure=None, price=price,
                      tapped_at_max=AT)
    assert (decision.reason, decision.card.atcs_recent) == (Reason.approved, (4, 5))


@pytest.mark.parametrize("tap, arqc_failure, reason", [
    (facts(currency=840, tapped_at=AT + timedelta(days=1)), None, Reason.tap_invalid),
    (facts(tapped_at=AT + timedelta(days=1)), Reason.arqc_invalid, Reason.tap_in_future),
    (facts(tapped_at=AT + timedelta(days=1), atc=4, arqc=b"\x04" * 8), None,
     Reason.tap_in_future),
])
def test_tap_in_future_ranks_after_tap_invalid_before_the_cryptogram(tap, arqc_failure, reason):
    assert decide(SEEN, tap, arqc_failure=arqc_failure, price=never_priced,
                  tapped_at_max=AT).reason is reason
    assert PRIORITY[:3] == (Reason.tap_invalid, Reason.tap_in_future, Reason.arqc_invalid)


_cards = st.builds(
    lambda atcs, deny, fare_state: replace(
        SEEN, atcs_recent=tuple(sorted(atcs)), arqcs_recent=tuple(a.to_bytes(8, "big") for a in sorted(atcs)),
        atc_max=max(atcs, default=-1), deny_reasons=frozenset(deny), fare_state=fare_state),
    st.sets(st.integers(0, 40), max_size=ATCS_REMEMBERED_MAX),
    st.sets(st.sampled_from(["lost", "closed", "unpaid_debt"]), max_size=2),
    st.one_of(st.none(), st.binary(min_size=1, max_size=8)))
_facts = st.builds(
    lambda atc, same_arqc, currency, gate, minutes: facts(
        atc=atc, arqc=atc.to_bytes(8, "big") if same_arqc else b"\xff" * 8, currency=currency,
        gate_id=gate, tapped_at=AT + timedelta(minutes=minutes)),
    st.integers(0, 45), st.booleans(), st.sampled_from([156, 840]), st.sampled_from(["g1", "g2"]),
    st.integers(-3000, 3000))


@given(_cards, _facts, st.sampled_from([None, Reason.arqc_invalid, Reason.card_unknown]),
       st.booleans(), st.booleans())
def test_no_declined_tap_writes_fare_state(card, tap, arqc_failure, priceable, enrolled):
    """Whatever declines a tap, the card's fare state (day journal, open entry, rider
    category) is what it was: only an approved tap moves it."""
    fare = replace(FARE, fare_state=b"moved", rider_category="senior")
    decision = decide(card if enrolled else None, tap, arqc_failure=arqc_failure,
                      price=lambda c, f: fare if priceable else None, tapped_at_max=AT)
    if decision.reason is Reason.approved:
        assert decision.card.fare_state == b"moved" and decision.fare == fare
        return
    assert decision.fare is None
    assert decision.card is None or (decision.card.fare_state, decision.card.rider_category) == (
        card.fare_state, card.rider_category)
    if decision.reason in (Reason.tap_invalid, Reason.tap_in_future):
        assert decision.card is None


def test_unpriceable_tap_still_uses_up_its_atc():
    decision = decide(CARD, facts(), arqc_failure=None, price=lambda card, tap: None)
    assert decision.reason is Reason.fare_unavailable
    assert decision.card.atcs_recent == (5,) and decision.fare is None


def test_approved_tap_carries_the_fare_and_new_fare_state():
    decision = decide(CARD, facts(), arqc_failure=None, price=price)
    assert decision.fare == FARE
    assert (decision.card.fare_state, decision.card.rider_category, decision.card.atc_max) == (
        b"{}", "adult", 5)


def test_alerts_are_raised_even_for_declined_taps():
    alert = RaisedAlert("cloned_card", "tok", "t1", "{}")
    card = replace(CARD, atcs_recent=(5,), arqcs_recent=(b"\x02" * 8,))
    decision = decide(card, facts(), arqc_failure=None, price=never_priced,
                      detect=lambda c, f: ((alert,), b"state"))
    assert (decision.reason, decision.alerts, decision.card.alert_state) == (
        Reason.atc_cloned, (alert,), b"state")


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=120))
def test_no_atc_is_ever_approved_twice(atcs):
    card, approved = CARD, set()
    for atc in atcs:
        decision = decide(card, facts(atc=atc, arqc=atc.to_bytes(8, "big")), arqc_failure=None,
                          price=price)
        if decision.reason is Reason.approved:
            assert atc not in approved
            approved.add(atc)
        card = decision.card or card
        assert len(card.atcs_recent) <= ATCS_REMEMBERED_MAX
        assert list(card.atcs_recent) == sorted(set(card.atcs_recent))
