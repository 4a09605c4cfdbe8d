"""Per-line results of validating a disbursement batch.

Like TigerBeetle's ``CreateTransferResult``: a numbered enum, one value per line, in
priority order. A line with several problems gets the lowest-numbered one; the numbers
are stable (new codes are added at the end or documented as a break).

The order follows the checks: the identity number first (1-3; these three are
alternative diagnoses of the one field, and the scientific-notation case is recognised
before the generic format check because it is the more useful message), then the
registry (4-7), the amount (8-11), and the batch and period (12-13).

``invalid_amount_format`` is not in issue 6's list: a line whose amount cell is not a
number needs a reason too, since no line may be dropped.

None of the codes is transient within one batch: the department fixes the file (or the
registry is updated) and submits a new batch.
"""

from __future__ import annotations

from enum import IntEnum


class LineResult(IntEnum):
    """Outcome of one batch line; ``ok`` (0) is an accepted line."""

    ok = 0
    invalid_id_format = 1
    invalid_id_checksum = 2
    id_in_scientific_notation = 3
    name_mismatch = 4
    cardholder_not_found = 5
    card_not_active = 6
    account_mismatch = 7
    invalid_amount_format = 8
    amount_not_positive = 9
    amount_precision = 10
    amount_over_limit = 11
    duplicate_in_batch = 12
    already_paid_in_period = 13

    @property
    def reason(self) -> str:
        """The reason code written in reports: the member name, ``""`` for ``ok``.

        >>> LineResult.amount_precision.reason, LineResult.ok.reason
        ('amount_precision', '')
        """
        return "" if self is LineResult.ok else self.name
