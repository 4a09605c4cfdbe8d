"""Wire formats of the tap API answers (the request is :class:`terminal.tap.Tap`).

Every answer is a frozen msgspec Struct; encoders are built once (see :mod:`engine.api`).
Money is in minor units (fen).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

AMOUNT_MINOR_MAX = 10**15
Minor = Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)]
CardToken = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class TapAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="result",
                tag="answer"):
    """The engine's answer to one tap (``"result": "answer"`` on the wire).

    ``reason`` is the name of :class:`engine.taps.reasons.Reason` and ``reason_code`` its
    number; ``replayed`` is true when this ``tap_id`` was answered before and this is that
    first answer again (nothing was charged a second time).

    A late tap (older than the card's latest) re-prices the card's transit day with the
    tap in its time position: ``fare_minor`` is then what the day's charges went up by, or
    ``refund_minor`` what they went down by (refunded to the card; never both non-zero);
    ``day_total_minor`` is the re-priced day's total.
    """

    tap_id: str
    decision: Literal["approved", "declined"]
    reason: str
    reason_code: int
    fare_minor: Minor
    rider_category: str
    day_total_minor: Minor
    day_cap_minor: Minor
    replayed: bool = False
    refund_minor: Minor = 0


class TapConflict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="result",
                  tag="conflict"):
    """A ``tap_id`` seen before with a different body: refused, nothing changed."""

    tap_id: str
    field: str
    message: str


class TapError(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="result",
               tag="invalid"):
    """One tap of an upload that could not be read (the others are still answered)."""

    index: int
    message: str


TapResult = TapAnswer | TapConflict | TapError


class TapBatchAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Answer to an uploaded list of taps, one result per tap in upload order."""

    results: list[TapResult]


class Problem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An error answer (RFC 9457 shape, reduced): ``title`` names the field and reason."""

    status: int
    title: str


class DenyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One deny-list entry (a card may be listed for several reasons)."""

    card_token: CardToken
    reason: Literal["lost", "closed", "unpaid_debt"]


class DenyEntries(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entries: list[DenyEntry]


class CardTap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One recorded tap of a card (``tapped_at``: ISO 8601 with offset; ``refund_minor``
    what a late tap refunded, see :class:`TapAnswer`)."""

    tap_id: str
    tapped_at: str
    station: str
    direction: Literal["entry", "exit", "single"]
    decision: Literal["approved", "declined"]
    reason: str
    fare_minor: Minor
    day_total_minor: Minor
    refund_minor: Minor = 0


class Journey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Approved taps paired into a journey, as a rider reads a statement.

    ``kind``: ``complete`` (entry then exit), ``open`` (the card's latest entry, no exit
    yet), ``missing_exit`` (an entry followed by another entry), ``exit_without_entry``,
    or ``single`` (a flat-fare validator). ``fare_minor`` is what its taps charged (the
    fare engine charges a missing exit's maximum fare at the card's next tap) and
    ``refund_minor`` what they refunded: a late tap carries the difference its re-pricing
    made to the whole day, so on a re-priced day the journeys' figures are the charges as
    posted and only the day's total is per journey exact.
    """

    kind: Literal["complete", "open", "missing_exit", "exit_without_entry", "single"]
    entry: CardTap | None
    exit: CardTap | None
    fare_minor: Minor
    refund_minor: Minor = 0


class JourneyList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A card's journeys and all its recorded taps (declined too), newest first."""

    card_token: CardToken
    journeys: list[Journey]
    taps: list[CardTap]


class Alert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    alert_id: int
    kind: str
    card_token: str | None
    tap_id: str | None
    detail: str
    raised_at: str


class AlertList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    alerts: list[Alert]


class Health(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Literal["ok"]
    database: bool
