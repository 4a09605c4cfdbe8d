"""Amounts on the wire: ``int`` minor units inside, exact decimal strings outside.

ISO 20022 amounts are ``xs:decimal`` with at most 5 fraction digits and 18 digits in all
(``ActiveCurrencyAndAmount``); a currency allows only its ISO 4217 minor unit. Nothing
here touches a float: formatting is integer arithmetic, parsing is :class:`decimal.Decimal`
and an amount that does not fit the minor unit exactly is refused, never rounded
(field-pitfalls, "Money in files and messages").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from adapters.errors import AmountError

# ISO 4217 minor units of the currencies the engine and its partner banks use. A currency
# missing here is refused rather than guessed.
CURRENCY_MINOR_UNITS = {
    "CNY": 2, "HKD": 2, "MOP": 2, "TWD": 2, "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2,
    "SEK": 2, "NOK": 2, "DKK": 2, "SGD": 2, "AUD": 2, "CAD": 2,
    "JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3,
}
# ``ActiveCurrencyAndAmount``: totalDigits 18, so an amount in minor units has at most 18 digits.
AMOUNT_MINOR_MAX = 10**18 - 1

assert all(0 <= digits <= 5 for digits in CURRENCY_MINOR_UNITS.values())


def minor_unit(currency: str) -> int:
    """Number of decimals of ``currency`` (ISO 4217 minor unit).

    >>> minor_unit("CNY"), minor_unit("JPY")
    (2, 0)

    Raises
    ------
    AmountError
        The currency is not in :data:`CURRENCY_MINOR_UNITS`.
    """
    try:
        return CURRENCY_MINOR_UNITS[currency]
    except KeyError:
        raise AmountError(f"currency {currency!r} has no known minor unit",
                          element="Ccy") from None


def format_amount(amount_minor: int, currency: str) -> str:
    """The wire text of ``amount_minor`` (non-negative) in ``currency``, exact.

    >>> format_amount(12345, "CNY"), format_amount(5, "CNY"), format_amount(2700, "JPY")
    ('123.45', '0.05', '2700')

    Raises
    ------
    AmountError
        Negative, over :data:`AMOUNT_MINOR_MAX`, or an unknown currency.
    """
    digits = CURRENCY_MINOR_UNITS.get(currency)
    if digits is None:
        minor_unit(currency)  # raises, naming the currency
    return format_minor(amount_minor, digits)


def format_minor(amount_minor: int, digits: int) -> str:
    """``amount_minor`` with ``digits`` decimals (for sums such as ``CtrlSum``).

    >>> format_minor(60, 2), format_minor(123456, 0)
    ('0.60', '123456')
    """
    if type(amount_minor) is not int or not 0 <= amount_minor <= AMOUNT_MINOR_MAX:
        raise AmountError(f"amount {amount_minor!r} must be an int of minor units in "
                          f"0..{AMOUNT_MINOR_MAX}", element="Amt")
    if digits == 0:
        return str(amount_minor)
    units, fraction = divmod(amount_minor, 10**digits)
    return f"{units}.{fraction:0{digits}d}"


def parse_amount(text: str, currency: str, *, element: str = "Amt",
                 line: int | None = None) -> int:
    """Minor units of the wire amount ``text`` in ``currency``.

    Trailing zeros beyond the minor unit are accepted (``12.340`` is exactly 1234 fen);
    any non-zero digit beyond it is refused.

    >>> parse_amount("0.10", "CNY"), parse_amount("12.340", "CNY"), parse_amount("2700", "JPY")
    (10, 1234, 2700)
    >>> parse_amount("12.345", "CNY", element="IntrBkSttlmAmt", line=9)
    Traceback (most recent call last):
    ...
    adapters.errors.AmountError: IntrBkSttlmAmt (line 9): 12.345 has more decimals than CNY allows (2)

    Raises
    ------
    AmountError
        Not a plain non-negative decimal, too many decimals for the currency, too large,
        or an unknown currency; names ``element`` and ``line``.
    """
    digits = _minor_unit_at(currency, element, line)
    value = to_decimal(text, element=element, line=line)
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{text.strip()} has more decimals than {currency} allows ({digits})",
                          element=element, line=line)
    amount_minor = int(scaled)
    if amount_minor > AMOUNT_MINOR_MAX:
        raise AmountError(f"{text.strip()} is too large", element=element, line=line)
    return amount_minor


def to_decimal(text: str, *, element: str, line: int | None = None) -> Decimal:
    """``text`` as an exact non-negative :class:`Decimal` (no exponent, no sign but none).

    >>> to_decimal(" 0.30 ", element="CtrlSum")
    Decimal('0.30')
    """
    stripped = (text or "").strip()
    if not stripped or not all(ch.isdigit() or ch == "." for ch in stripped) \
            or stripped.count(".") > 1 or not stripped.isascii():
        raise AmountError(f"{stripped!r} is not a plain decimal amount", element=element,
                          line=line)
    try:
        return Decimal(stripped)
    except InvalidOperation:
        raise AmountError(f"{stripped!r} is not a decimal amount", element=element,
                          line=line) from None


def _minor_unit_at(currency: str, element: str, line: int | None) -> int:
    try:
        return minor_unit(currency)
    except AmountError:
        raise AmountError(f"currency {currency!r} has no known minor unit", element=element,
                          line=line) from None


def as_decimal(amount_minor: int, currency: str) -> Decimal:
    """The exact :class:`Decimal` value of ``amount_minor`` in ``currency`` (for sums).

    >>> as_decimal(10, "CNY") + as_decimal(20, "CNY") + as_decimal(30, "CNY")
    Decimal('0.60')
    """
    return Decimal(amount_minor).scaleb(-minor_unit(currency))


def format_decimal(value: Decimal) -> str:
    """``value`` as plain decimal text, never in exponent form (``CtrlSum``, ``TtlAmt``).

    >>> format_decimal(Decimal("1E+2")), format_decimal(Decimal("0.60"))
    ('100', '0.60')
    """
    return format(value, "f")
