"""Transfer discounts between fare legs, as GTFS-Fares v2 ``fare_transfer_rules.txt``.

A *sub-journey* is a run of legs joined by transfers. When a new leg starts, the rule that
matches (previous leg group -> new leg group, transfer count, duration limit) says what the
new leg costs on top of what the sub-journey has cost so far (``S``):

==========================  ============================  =========================
``fare_transfer_type``      first transfer (A then B)     chained transfer
==========================  ============================  =========================
0  from-leg + transfer      A + AB   -> B costs AB        S + BC -> C costs BC
1  from + transfer + to     A + AB + B -> B costs AB + B  S + BC + C
2  transfer only            AB       -> B costs AB - A    S + BC -> C costs BC
==========================  ============================  =========================

(GTFS reference, ``fare_transfer_rules.txt``, ``fare_transfer_type``.) A leg's extra cost
is never below zero: a transfer never refunds what was already charged, so a discount
larger than the leg makes the leg free.

Matching follows the spec's empty-field rule: a rule naming the exact leg group wins over a
rule with the field empty; among rules that fit the transfer count, the smallest
``transfer_count`` wins (``-1`` = no limit, counted as the largest).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.fares.errors import FareRulesError


class TransferType(enum.IntEnum):
    """``fare_transfer_type`` values (GTFS reference)."""

    FROM_LEG_PLUS_TRANSFER = 0
    FROM_PLUS_TRANSFER_PLUS_TO = 1
    TRANSFER_ONLY = 2


class DurationLimitType(enum.IntEnum):
    """``duration_limit_type``: which validations the duration limit runs between."""

    DEPARTURE_TO_ARRIVAL = 0
    DEPARTURE_TO_DEPARTURE = 1
    ARRIVAL_TO_DEPARTURE = 2
    ARRIVAL_TO_ARRIVAL = 3


@dataclass(frozen=True, slots=True)
class TransferRule:
    """One row of ``fare_transfer_rules.txt``.

    ``fare_product_id`` names the transfer product (its amount may be negative: a
    discount); ``None`` means the transfer itself costs nothing. ``transfer_count`` is
    ``None`` when the from and to groups differ (the spec forbids it there).
    """

    from_leg_group_id: str | None
    to_leg_group_id: str | None
    transfer_count: int | None
    duration_limit_s: int | None
    duration_limit_type: DurationLimitType | None
    fare_transfer_type: TransferType
    fare_product_id: str | None

    def __post_init__(self) -> None:
        if self.duration_limit_s is not None and self.duration_limit_type is None:
            raise FareRulesError("fare_transfer_rules: duration_limit_type is required with duration_limit")
        if self.transfer_count is not None and self.transfer_count == 0:
            raise FareRulesError("fare_transfer_rules: transfer_count must be -1 or positive")


@dataclass(frozen=True, slots=True)
class LegTimes:
    """The validation times of a leg (aware datetimes). A single-tap leg has both equal."""

    departure_at: datetime
    arrival_at: datetime


def _duration_s(rule: TransferRule, first: LegTimes, last: LegTimes) -> float:
    kind = rule.duration_limit_type
    start = first.departure_at if kind in (DurationLimitType.DEPARTURE_TO_ARRIVAL, DurationLimitType.DEPARTURE_TO_DEPARTURE) else first.arrival_at
    end = last.arrival_at if kind in (DurationLimitType.DEPARTURE_TO_ARRIVAL, DurationLimitType.ARRIVAL_TO_ARRIVAL) else last.departure_at
    return (end - start).total_seconds()


def _narrow(rules: list[TransferRule], field: str, value: str | None) -> list[TransferRule]:
    exact = [rule for rule in rules if getattr(rule, field) is not None and getattr(rule, field) == value]
    return exact if exact else [rule for rule in rules if getattr(rule, field) is None]


def find_transfer_rule(
    rules: Sequence[TransferRule],
    from_leg_group_id: str | None,
    to_leg_group_id: str | None,
    transfer_number: int,
    first: LegTimes,
    last: LegTimes,
) -> TransferRule | None:
    """The rule that applies to transfer number ``transfer_number`` (1 = first transfer of
    the sub-journey) from a leg of ``from_leg_group_id`` to one of ``to_leg_group_id``;
    ``None`` when no rule applies (the new leg starts a new sub-journey at full fare).

    ``first`` is the first leg of the sub-journey, ``last`` the new leg; the rule's
    duration limit is measured between them as its ``duration_limit_type`` says.
    """
    assert transfer_number >= 1, transfer_number
    candidates = _narrow(list(rules), "from_leg_group_id", from_leg_group_id)
    candidates = _narrow(candidates, "to_leg_group_id", to_leg_group_id)
    fitting = []
    for rule in candidates:
        if rule.transfer_count is not None and rule.transfer_count != -1 and transfer_number > rule.transfer_count:
            continue
        if rule.duration_limit_s is not None and _duration_s(rule, first, last) > rule.duration_limit_s:
            continue
        fitting.append(rule)
    if not fitting:
        return None
    # Smallest transfer_count that still covers this transfer wins; no limit (-1 or
    # empty) counts as the largest.
    return min(fitting, key=lambda rule: (rule.transfer_count in (None, -1), rule.transfer_count or 0))


def leg_cost_after_transfer(
    rule: TransferRule,
    transfer_number: int,
    leg_fare_minor: int,
    charged_so_far_minor: int,
    product_amount: Callable[[str], int],
) -> int:
    """What the new leg adds to the sub-journey's cost under ``rule`` (minor units, >= 0).

    ``leg_fare_minor`` is the new leg's own fare (B), ``charged_so_far_minor`` what the
    sub-journey has cost so far (S, which is A on the first transfer), and
    ``product_amount(fare_product_id)`` the transfer product's amount (AB) for this rider.

    >>> rule = TransferRule(None, None, None, 5400, DurationLimitType.DEPARTURE_TO_DEPARTURE,
    ...                     TransferType.FROM_PLUS_TRANSFER_PLUS_TO, "discount")
    >>> leg_cost_after_transfer(rule, 1, 300, 200, {"discount": -100}.__getitem__)
    200
    >>> two = TransferRule(None, None, None, None, None, TransferType.TRANSFER_ONLY, "ab")
    >>> leg_cost_after_transfer(two, 1, 400, 300, {"ab": 500}.__getitem__)
    200
    """
    assert leg_fare_minor >= 0 and charged_so_far_minor >= 0, (leg_fare_minor, charged_so_far_minor)
    transfer_minor = product_amount(rule.fare_product_id) if rule.fare_product_id is not None else 0
    if rule.fare_transfer_type is TransferType.FROM_LEG_PLUS_TRANSFER:
        cost = transfer_minor
    elif rule.fare_transfer_type is TransferType.FROM_PLUS_TRANSFER_PLUS_TO:
        cost = transfer_minor + leg_fare_minor
    elif transfer_number == 1:
        cost = transfer_minor - charged_so_far_minor
    else:
        cost = transfer_minor
    return max(0, cost)
