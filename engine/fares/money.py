"""Exact conversion of decimal currency amounts (as GTFS and tariff files write them) to
integer minor units.

The number of decimals per currency is ISO 4217's minor unit. Amounts are parsed with
``Decimal`` and refused, never rounded, when they carry more decimals than the currency
has (``12.345`` CNY is an error, ``2`` and ``2.0`` and ``2.00`` are all 200 fen).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from engine.fares.errors import FareRulesError

# ISO 4217 minor units of the currencies fare files here use (add as feeds need them).
MINOR_UNIT_DIGITS = {"CNY": 2, "PLN": 2, "EUR": 2, "USD": 2, "HKD": 2, "JPY": 0, "KRW": 0}

# Largest amount (minor units) any single fare, cap or total may hold: PostgreSQL BIGINT.
AMOUNT_MINOR_MAX = 2**63 - 1


def minor_digits(currency: str) -> int:
    """Decimals of ``currency`` (ISO 4217 alpha code).

    >>> minor_digits("PLN")
    2

    Raises
    ------
    FareRulesError
        The currency is not in :data:`MINOR_UNIT_DIGITS`.
    """
    try:
        return MINOR_UNIT_DIGITS[currency]
    except KeyError:
        raise FareRulesError(f"currency {currency!r}: unknown ISO 4217 code") from None


def to_minor(text: str, currency: str, where: str, *, negative_ok: bool = False) -> int:
    """Parse a decimal amount such as ``"88.20"`` into minor units of ``currency``.

    ``where`` names the file, row and field for the error message. GTFS
    (``fare_products.amount``) allows negative amounts for transfer discounts: pass
    ``negative_ok=True`` there.

    >>> to_minor("88.20", "PLN", "x")
    8820
    >>> to_minor("2", "CNY", "x")
    200
    >>> to_minor("12.345", "CNY", "fare_products.txt row 2 amount")
    Traceback (most recent call last):
    ...
    engine.fares.errors.FareRulesError: fare_products.txt row 2 amount: '12.345' has more than 2 decimals for CNY

    Raises
    ------
    FareRulesError
        Not a decimal number, too many decimals, negative when not allowed, or out of range.
    """
    digits = minor_digits(currency)
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise FareRulesError(f"{where}: {text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise FareRulesError(f"{where}: {text!r} is not a finite amount")
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise FareRulesError(f"{where}: {text!r} has more than {digits} decimals for {currency}")
    amount_minor = int(scaled)
    if amount_minor < 0 and not negative_ok:
        raise FareRulesError(f"{where}: {text!r} must not be negative")
    if abs(amount_minor) > AMOUNT_MINOR_MAX:
        raise FareRulesError(f"{where}: {text!r} is out of range")
    return amount_minor
