"""Why a tap was approved or declined: one numbered code per outcome, in priority order.

When several checks fail, the answer carries the lowest-numbered reason, so the order is
part of the contract with gates: a tap whose cryptogram fails is ``arqc_invalid`` even if
the card is also on the deny list (nothing about an unauthenticated card can be trusted).

``unavailable`` is the one transient reason: the key service or database did not answer,
nothing was recorded, and the gate may retry with the same ``tap_id``.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """Outcome of one tap (TigerBeetle-style result code; priority = numeric order).

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

    @property
    def decision(self) -> str:
        """``"approved"`` or ``"declined"`` (the wire value)."""
        return "approved" if self is Reason.approved else "declined"


DENY_REASONS = {"lost": Reason.card_lost, "closed": Reason.card_closed,
                "unpaid_debt": Reason.unpaid_debt}
assert all(reason.name.endswith(("lost", "closed", "debt")) for reason in DENY_REASONS.values())
