"""Argument types of the ``onecard`` command line, shared by every command that takes them.

Each is an ``argparse`` ``type=``: it returns the parsed value or raises
``argparse.ArgumentTypeError``, so a bad value is refused before any work starts, on stderr,
with exit code 2 and the argument named (``argument id: must be ...``).

| type | accepts |
| --- | --- |
| :func:`record_id` | a batch or cycle id (or a count): an integer from 1 to 2**63 - 1 (PostgreSQL ``bigint``) |
| :func:`account_id` | a ledger account id in its one text form: 32 hex digits (any case) |
| :func:`amount_minor` | an amount in fen from 0 to 2**63 - 1 |
| :func:`port` | a TCP port from 0 (any free port) to 65535 |
| :func:`integer_in` | a whole number in a given range (ASCII digits) |

A value whose rule belongs to the domain gets its type from the domain's own check through
:func:`checked`, so the CLI, the API and Python callers share one rule (user names by
:func:`engine.disbursement.users.normalise_user`, which also stores and compares them;
programme codes and names; batch content hashes).

Ledger account ids are printed by every command (and the bank API, and ISO 20022 messages)
as :func:`account_text`: 32 upper-case hex digits.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TypeVar

from engine.errors import FieldError
from engine.settlement.instructions import account_text
from ledger.limits import AMOUNT_MAX as AMOUNT_MINOR_MAX

T = TypeVar("T")

RECORD_ID_MAX = 2**63 - 1
ACCOUNT_ID_PATTERN = re.compile(r"[0-9A-Fa-f]{32}")

PORT_MAX = 65535

__all__ = ["account_id", "account_text", "amount_minor", "bounded_text", "checked", "integer_in", "port",
           "record_id"]


def record_id(text: str) -> int:
    """A batch or cycle id, or a positive count such as a ``--limit``.

    >>> record_id("42")
    42
    >>> record_id("99999999999999999999")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer from 1 to 9223372036854775807
    """
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(RECORD_ID_MAX))
            and 1 <= int(text) <= RECORD_ID_MAX):
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {RECORD_ID_MAX}")
    return int(text)


def account_id(text: str) -> int:
    """A ledger account id written as :func:`account_text` prints it (either case).

    >>> account_id("000000000000000000000000000000ff")
    255
    >>> account_id("255")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a ledger account id of 32 hex digits (as printed by onecard)
    """
    if not ACCOUNT_ID_PATTERN.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError("must be a ledger account id of 32 hex digits (as printed by onecard)")
    return int(text.strip(), 16)


def amount_minor(text: str) -> int:
    """An amount in fen (an integer, no yuan decimals).

    >>> amount_minor("500000000")
    500000000
    """
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(AMOUNT_MINOR_MAX))
            and int(text) <= AMOUNT_MINOR_MAX):
        raise argparse.ArgumentTypeError(f"must be an integer number of fen from 0 to {AMOUNT_MINOR_MAX}")
    return int(text)


def port(text: str) -> int:
    """A TCP port to listen on; 0 lets the kernel pick a free one.

    >>> port("8080")
    8080
    """
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(PORT_MAX)) and int(text) <= PORT_MAX):
        raise argparse.ArgumentTypeError(f"must be a TCP port from 0 to {PORT_MAX}")
    return int(text)


def integer_in(low: int, high: int) -> Callable[[str], int]:
    """A type for a whole number from ``low`` to ``high`` written in ASCII digits.

    >>> integer_in(0, 900_000)("300000")
    300000
    >>> integer_in(0, 900_000)("５")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer from 0 to 900000
    """
    assert 0 <= low <= high

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= len(str(high)) and low <= int(text) <= high):
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}")
        return int(text)

    return parse


def bounded_text(characters_max: int):
    """A type for a name of 1 to ``characters_max`` printable characters, not only spaces.

    >>> bounded_text(5)(" ICBC ")
    'ICBC'
    """
    assert characters_max > 0

    def parse(text: str) -> str:
        value = text.strip()
        if not value or len(value) > characters_max or not value.isprintable():
            raise argparse.ArgumentTypeError(
                f"must be 1 to {characters_max} printable characters, not empty")
        return value

    return parse


def checked(check: Callable[[str], T]) -> Callable[[str], T]:
    """The argument type of a domain check that raises :class:`~engine.errors.FieldError`:
    its reason is shown as argparse's (``argument --as: must be ...``).

    >>> from engine.disbursement.users import normalise_user
    >>> checked(normalise_user)(" ＢＯＢ ")
    'bob'
    >>> checked(normalise_user)(" ")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a user name, not empty or only spaces
    """

    def parse(text: str) -> T:
        try:
            return check(text)
        except FieldError as error:
            raise argparse.ArgumentTypeError(error.reason) from None

    parse.__name__ = check.__name__
    return parse
