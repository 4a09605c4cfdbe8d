"""Amounts in yuan as written by departments, to integer fen, exactly.

Accepted forms (after NFKC, so full-width digits, ``，``, ``．`` and ``￥`` count too):
an optional sign, an optional ``¥``, digits with optional correctly grouped thousands
separators (``1,234,567``), an optional fraction, an optional trailing ``元``, spaces
around any of these. A fraction may have more than two digits only if the extra digits
are zeros (``12.340`` is 12.34 yuan exactly); anything else beyond the fen is refused,
never rounded. No float is used anywhere: digits are turned into integers or Decimals.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from engine.disbursement.errors import AmountFormatError, AmountPrecisionError
from ledger.limits import AMOUNT_MAX as AMOUNT_MINOR_MAX

FEN_PER_YUAN = 100
FRACTION_DIGITS_MAX = 2
AMOUNT_TEXT_CHARS_MAX = 64
# An amount in fen is stored in a PostgreSQL bigint (disbursement_lines.amount_minor) and
# crosses the read-ahead pipe as a msgpack integer: both hold -(2**63 - 1) .. 2**63 - 1,
# the ledger's amount range (AMOUNT_MINOR_MAX is ledger.limits.AMOUNT_MAX).

_PLAIN = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,2}))?")
_GENERAL = re.compile(
    r"([+-]?)\s*¥?\s*([+-]?)\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?\s*元?"
)

assert FEN_PER_YUAN == 10**FRACTION_DIGITS_MAX


def _parts(text: str) -> tuple[bool, str, str]:
    """(negative, whole digits, fraction digits) of an amount text, or AmountFormatError."""
    if len(text) > AMOUNT_TEXT_CHARS_MAX:
        raise AmountFormatError(f"amount is longer than {AMOUNT_TEXT_CHARS_MAX} characters")
    plain = _PLAIN.fullmatch(text)
    if plain:
        return False, plain.group(1), plain.group(2) or ""
    normal = unicodedata.normalize("NFKC", text).strip()
    match = _GENERAL.fullmatch(normal)
    if not match or (match.group(1) and match.group(2)):
        raise AmountFormatError(f"amount {text!r} is not a number of yuan")
    negative = "-" in (match.group(1), match.group(2))
    return negative, match.group(3).replace(",", ""), match.group(4) or ""


def parse_amount(text: str) -> Decimal:
    """The exact value in yuan of ``text`` (any number of decimals), for declared totals.

    Raises
    ------
    AmountFormatError
        ``text`` is not an amount (see the module docstring for the accepted forms).

    >>> parse_amount("￥1，234．5600元")
    Decimal('1234.5600')
    """
    negative, whole, fraction = _parts(text)
    value = Decimal(f"{whole}.{fraction}" if fraction else whole)
    return -value if negative else value


def parse_amount_minor(text: str) -> int:
    """``text`` (yuan, at most two significant decimals) as integer fen; may be <= 0.

    Raises
    ------
    AmountFormatError
        ``text`` is not an amount, or its fen are beyond +-``AMOUNT_MINOR_MAX``.
    AmountPrecisionError
        A non-zero digit after the fen (``12.345``); carries the exact value.

    >>> parse_amount_minor("1,234.5"), parse_amount_minor(" ¥ 0.07 元"), parse_amount_minor("-3")
    (123450, 7, -300)
    >>> parse_amount_minor("１２．３４０")
    1234
    >>> parse_amount_minor("12.345")
    Traceback (most recent call last):
    ...
    engine.disbursement.errors.AmountPrecisionError: amount '12.345' has more than 2 decimals
    """
    plain = _PLAIN.fullmatch(text)
    if plain:
        # The common case, "150.50": at most two decimals, no sign, marks or separators.
        whole, fraction = plain.groups()
        minor = int(whole) * FEN_PER_YUAN + (int(fraction.ljust(FRACTION_DIGITS_MAX, "0")) if fraction else 0)
        return _in_range(minor, text)
    negative, whole, fraction = _parts(text)
    kept, extra = fraction[:FRACTION_DIGITS_MAX], fraction[FRACTION_DIGITS_MAX:]
    if extra.strip("0"):
        exact = Decimal(f"{whole}.{fraction}")
        raise AmountPrecisionError(
            f"amount {text!r} has more than {FRACTION_DIGITS_MAX} decimals",
            -exact if negative else exact,
        )
    minor = int(whole) * FEN_PER_YUAN + int(kept.ljust(FRACTION_DIGITS_MAX, "0"))
    return _in_range(-minor if negative else minor, text)


def _in_range(amount_minor: int, text: str) -> int:
    """``amount_minor``, or AmountFormatError naming ``text`` if it is beyond +-AMOUNT_MINOR_MAX."""
    if not -AMOUNT_MINOR_MAX <= amount_minor <= AMOUNT_MINOR_MAX:
        raise AmountFormatError(f"at most {format_minor(AMOUNT_MINOR_MAX)} yuan")
    return amount_minor


def format_minor(amount_minor: int) -> str:
    """Fen as a yuan text with exactly two decimals (what files and XML carry).

    >>> format_minor(123450), format_minor(7), format_minor(-300)
    ('1234.50', '0.07', '-3.00')
    """
    sign = "-" if amount_minor < 0 else ""
    whole, fen = divmod(abs(amount_minor), FEN_PER_YUAN)
    return f"{sign}{whole}.{fen:0{FRACTION_DIGITS_MAX}d}"
