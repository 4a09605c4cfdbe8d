"""Resident identity numbers (GB 11643-1999 公民身份号码): normalise and check one number.

An 18-character number is 6 address digits, the birth date ``YYYYMMDD``, 3 order digits
and a check character (ISO 7064 MOD 11-2, ``0``-``9`` or ``X``) computed with
``stdnum.cn.ric.calc_check_digit``.

Deliberate choices (see ``identity/cn_identity_numbers.md`` in the reference data):

- a lower-case ``x`` and full-width characters are normalised, not refused;
- the birth date must exist, be after 1900-01-01 and not be after ``today``
  (python-stdnum accepts future dates);
- the address code is *not* checked against a code list: codes change, python-stdnum
  rejects codes that did not yet exist in the birth year (a 1987-born ``510107...`` is a
  real person), and the cardholder registry decides who exists;
- 15-digit legacy numbers are refused as a format error;
- a number Excel turned into scientific notation (``5.10104E+17``) is reported as such,
  since the department must fix the cell format, not the number.
"""

from __future__ import annotations

import datetime
import functools
import re
from enum import IntEnum

from stdnum.cn.ric import calc_check_digit

from engine.disbursement.text import normalise_after

ID_LENGTH = 18
BIRTH_YEAR_MIN = 1900
BIRTH_DATES_CACHED_MAX = 65_536

_FORMAT = re.compile(r"[0-9]{17}[0-9X]")
_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?E\+?[0-9]{1,3}")


class IdCheck(IntEnum):
    """Outcome of checking one identity number; exactly one applies."""

    valid = 0
    invalid_format = 1
    invalid_checksum = 2
    scientific_notation = 3


def normalise_id(text: str) -> str:
    """``text`` without surrounding spaces, in ASCII, upper-case (``x`` to ``X``).

    >>> normalise_id(" ５１０１２１１９５８０３１４２１５ｘ ")
    '51012119580314215X'
    """
    return normalise_after(text, str.upper)


def check_id(number: str, today: datetime.date) -> tuple[IdCheck, str]:
    """Check a normalised number (see :func:`normalise_id`); return the outcome and a detail.

    The detail is ``""`` for a valid number, else a sentence for the department that
    never repeats the number itself.

    >>> check_id("510121195803142150", datetime.date(2026, 1, 1))
    (<IdCheck.valid: 0>, '')
    >>> check_id("510121195803142151", datetime.date(2026, 1, 1))[0].name
    'invalid_checksum'
    >>> check_id("5.10121E+17", datetime.date(2026, 1, 1))[0].name
    'scientific_notation'
    >>> check_id("510112203001012152", datetime.date(2026, 1, 1))
    (<IdCheck.invalid_format: 1>, 'birth date 2030-01-01 is in the future')
    """
    if len(number) != ID_LENGTH or not _FORMAT.fullmatch(number):
        return _malformed(number)
    birth_problem = _birth_date_problem(number[6:14], today)
    if birth_problem:
        return IdCheck.invalid_format, birth_problem
    # calc_check_digit ignores the number's own last character.
    if number[17] != calc_check_digit(number):
        if number.endswith("000"):
            return IdCheck.invalid_checksum, (
                "check character is wrong and the number ends in 000: "
                "Excel keeps only 15 significant digits (format the column as text)"
            )
        return IdCheck.invalid_checksum, "check character is wrong"
    return IdCheck.valid, ""


def _malformed(number: str) -> tuple[IdCheck, str]:
    if _SCIENTIFIC.fullmatch(number):
        return IdCheck.scientific_notation, "number was converted to scientific notation (format the column as text)"
    if len(number) == 15 and number.isdigit():
        return IdCheck.invalid_format, "15-digit legacy number; the 18-character number is required"
    return IdCheck.invalid_format, f"must be 17 digits and a digit or X, got {len(number)} characters"


# Birth dates repeat across a batch (tens of thousands of distinct days in a century), so
# their checks are cached: parsing a date is a large part of checking a number.
@functools.lru_cache(maxsize=BIRTH_DATES_CACHED_MAX)
def _birth_date_problem(yyyymmdd: str, today: datetime.date) -> str:
    """``""`` if the date exists and lies between ``BIRTH_YEAR_MIN`` and ``today``, else why not."""
    try:
        birth = datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return "birth date does not exist"
    if birth > today:
        return f"birth date {birth.isoformat()} is in the future"
    if birth.year < BIRTH_YEAR_MIN:
        return f"birth year {birth.year} is before {BIRTH_YEAR_MIN}"
    return ""


def check_character(first17: str) -> str:
    """The check character (``0``-``9`` or ``X``) for the first 17 digits of a number.

    ``stdnum.cn.ric.calc_check_digit`` expects the whole number and ignores its last
    character, hence the placeholder.

    >>> check_character("51012119580314215"), check_character("51340119720505003")
    ('0', 'X')
    """
    assert len(first17) == ID_LENGTH - 1
    return calc_check_digit(first17 + "?")


def id_key(number: str) -> int:
    """A valid number as one integer (< 2**63), to keep millions of them in a set cheaply.

    >>> id_key("51340119720505003X") == id_key("51340119720505003X")
    True
    """
    check = 10 if number[17] == "X" else int(number[17])
    return int(number[:17]) * 11 + check
