"""Payment periods (``YYYY-MM``) of disbursement batches, checked the same way by the CLI
and the department API.

A period names the month a payment is for (``already_paid_in_period`` compares them), so
only months this engine can plausibly pay for are accepted: 2000-01 to 2099-12.
"""

from __future__ import annotations

import re

from engine.errors import UsageError

PERIOD_FIRST = "2000-01"
PERIOD_LAST = "2099-12"
PERIOD_PATTERN = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")

# Fixed-width text: string order is month order.
assert PERIOD_PATTERN.fullmatch(PERIOD_FIRST) and PERIOD_PATTERN.fullmatch(PERIOD_LAST)
assert PERIOD_FIRST < PERIOD_LAST


def check_period(text: str, field: str = "period") -> str:
    """Return ``text`` if it is a month ``YYYY-MM`` from :data:`PERIOD_FIRST` to
    :data:`PERIOD_LAST`.

    Raises
    ------
    UsageError
        Not ``YYYY-MM``, or out of range; the message names ``field``.

    >>> check_period("2026-11")
    '2026-11'
    >>> check_period("0000-01", "--period")
    Traceback (most recent call last):
    ...
    engine.errors.UsageError: --period: must be a month from 2000-01 to 2099-12, got '0000-01'
    """
    if not PERIOD_PATTERN.fullmatch(text) or not PERIOD_FIRST <= text <= PERIOD_LAST:
        raise UsageError(f"{field}: must be a month from {PERIOD_FIRST} to {PERIOD_LAST}, "
                         f"got {text[:20]!r}")
    return text
