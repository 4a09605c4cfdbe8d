"""Errors of disbursement parsing and validation (all under :class:`engine.errors.EngineError`).

Per-line problems are :class:`engine.disbursement.results.LineResult` values, not
exceptions; these classes are for a single value handed to a parser (amount, card
number) and for refusing a whole file.
"""

from __future__ import annotations

from decimal import Decimal

from engine.errors import EngineError


class AmountError(EngineError, ValueError):
    """An amount text is not an amount in yuan with at most two decimals."""


class AmountFormatError(AmountError):
    """The text is not a number (after removing marks, separators and spaces)."""


class AmountPrecisionError(AmountError):
    """The amount has a non-zero digit after the fen (``12.345``); ``exact`` is its exact
    value in yuan, kept so that control sums can still be checked exactly."""

    def __init__(self, message: str, exact: Decimal) -> None:
        super().__init__(message)
        self.exact = exact


class CardNumberError(EngineError, ValueError):
    """A card number (PAN) is malformed: not digits, Luhn check failed, unknown BIN, or a
    length the BIN does not issue."""


class TotalsMismatchError(EngineError, ValueError):
    """The totals a file declares (``NbOfTxs``/``CtrlSum``, header or totals row) differ
    from its lines: the whole file is refused. The message gives both figures."""


class InsufficientFundsError(EngineError, ValueError):
    """The funding account cannot pay a batch: nothing was posted. ``shortfall_minor`` is
    how many fen are missing (the batch total minus what the account has available)."""

    def __init__(self, message: str, shortfall_minor: int) -> None:
        super().__init__(message)
        self.shortfall_minor = shortfall_minor
