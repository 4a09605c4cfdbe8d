"""Why a tap was approved or declined: one numbered code per outcome, and their priority.

When several checks fail, the answer carries the reason first in :data:`PRIORITY`, so the
order is part of the contract with gates: a tap whose cryptogram fails is
``arqc_invalid`` even if the card is also on the deny list (nothing about an
unauthenticated card can be trusted). Codes never change (they are stored with the tap
records and gates key on them), so a reason added later takes the next free number and
its place in the priority is given by :data:`PRIORITY`, not by its number.

``unavailable`` is the one transient reason: the key service or database did not answer,
nothing was recorded, and the gate may retry with the same ``tap_id``.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """Outcome of one tap (TigerBeetle-style result code; priority: :data:`PRIORITY`).

    >>> Reason.approved.decision, Reason.card_lost.decision
    ('approved', 'declined')
    >>> min(Reason.card_lost, Reason.arqc_invalid).name
    'arqc_invalid'
    """

    approved = 0
    tap_invalid = 1          # a field is malformed or inconsistent (currency, amount)
    arqc_invalid = 2         # the application cryptogram does not verify
    card_unknown = 3         # no transit account for this card
    atc_cloned = 4           # ATC seen before with a different ARQC: two cards, one key
    atc_replayed = 5         # ATC seen before with the same ARQC: a replayed cryptogram
    atc_too_old = 6          # ATC far below the highest seen on this card
    card_lost = 7            # deny list: reported lost or stolen
    card_closed = 8          # deny list: account closed
    unpaid_debt = 9          # deny list: the issuing bank declined a daily collection
    fare_unavailable = 10    # the fare engine cannot price this tap (unknown station...)
    ledger_rejected = 11     # the ledger refused the posting
    unavailable = 12         # transient: key service or database unavailable; retry
    tap_in_future = 13       # tapped later than the server clock plus the gates' clock skew

    @property
    def decision(self) -> str:
        """``"approved"`` or ``"declined"`` (the wire value)."""
        return "approved" if self is Reason.approved else "declined"


# The order the checks run in (:func:`engine.taps.decision.decide`): a tap dated in the
# future comes right after a malformed one, because its time is the gate's fault and no
# part of it may touch the card (ATC memory, alert or fare state).
PRIORITY = (Reason.tap_invalid, Reason.tap_in_future, Reason.arqc_invalid,
            Reason.card_unknown, Reason.atc_cloned, Reason.atc_replayed, Reason.atc_too_old,
            Reason.card_lost, Reason.card_closed, Reason.unpaid_debt, Reason.fare_unavailable,
            Reason.ledger_rejected, Reason.unavailable)
assert set(PRIORITY) == set(Reason) - {Reason.approved} and len(PRIORITY) == len(Reason) - 1

DENY_REASONS = {"lost": Reason.card_lost, "closed": Reason.card_closed,
                "unpaid_debt": Reason.unpaid_debt}
assert all(reason.name.endswith(("lost", "closed", "debt")) for reason in DENY_REASONS.values())
# The deny reasons are picked by min(): their numbers must follow their priority.
assert sorted(DENY_REASONS.values()) == [r for r in PRIORITY if r in DENY_REASONS.values()]
