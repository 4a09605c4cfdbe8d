"""The pure tap decision: reason priority, ATC memory, deny list, pricing hand-off."""

from __future__ import annotations

from msgspec.structs import replace
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from engine.taps.decision import (ATCS_REMEMBERED_MAX, CardState, Fare, RaisedAlert, TapFacts,
                                  decide)
from engine.taps.reasons import Reason

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
