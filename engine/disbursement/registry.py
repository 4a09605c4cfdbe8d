"""Cardholder registry rows: statuses, categories, and checking an import file's rows.

The registry itself (PAN token and last 4 digits, encrypted identity number, keyed hash)
lives in the database; this module decides, without I/O, which rows of an import file
are good and what they mean. :class:`CardholderRecord` is what a registry lookup hands to
batch validation.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from enum import IntEnum, StrEnum

import msgspec

from adapters.cardholder_file import CardholderLine
from engine.disbursement.bank_card import BinTable, compact_pan
from engine.disbursement.errors import CardNumberError
from engine.disbursement.resident_id import IdCheck, check_id, id_key, normalise_id
from engine.disbursement.text import normalise_cell

NAME_CHARS_MAX = 64
CATEGORY_SEPARATORS = (";", "；", "、")


class CardStatus(StrEnum):
    """State of a cardholder's card (状态)."""

    active = "active"
    lost = "lost"
    closed = "closed"


class Category(StrEnum):
    """Entitlement categories (类别) used by fares and programmes."""

    senior = "senior"
    disabled = "disabled"
    student = "student"


STATUS_WORDS = {"正常": CardStatus.active, "挂失": CardStatus.lost, "注销": CardStatus.closed}
CATEGORY_WORDS = {"老年人": Category.senior, "残疾人": Category.disabled, "学生": Category.student}


class CardholderRecord(msgspec.Struct, frozen=True, gc=False):
    """A registered cardholder as batch validation sees it.

    Attributes
    ----------
    id_number : str
        The normalised 18-character identity number.
    name : str
        The registered name.
    status : CardStatus
        Card state; only ``active`` cards are paid.
    pan_token : str
        The key service's token of the card's PAN (the PAN itself is never stored).
    pan_last4 : str
        Last 4 digits of the PAN, for display.
    bank_code : str
        Issuing bank (BIN table code, e.g. ``ICBC``).
    categories : frozenset[Category]
        Entitlements.
    """

    id_number: str
    name: str
    status: CardStatus
    pan_token: str
    pan_last4: str
    bank_code: str
    categories: frozenset[Category] = frozenset()


class ImportResult(IntEnum):
    """Outcome of one cardholder import row, in priority order (lowest number reported)."""

    ok = 0
    invalid_id_format = 1
    invalid_id_checksum = 2
    id_in_scientific_notation = 3
    invalid_name = 4
    invalid_card_number = 5
    invalid_status = 6
    invalid_category = 7
    duplicate_id_in_file = 8
    duplicate_card_in_file = 9


ID_CHECK_RESULTS = {
    IdCheck.invalid_format: ImportResult.invalid_id_format,
    IdCheck.invalid_checksum: ImportResult.invalid_id_checksum,
    IdCheck.scientific_notation: ImportResult.id_in_scientific_notation,
}


class CardholderRow(msgspec.Struct, frozen=True):
    """One checked import row. For ``result == ok`` every field is normalised; otherwise
    ``detail`` says what is wrong and the fields hold what could be read.

    ``card_number`` is the PAN in the clear: the store tokenises it and keeps only the
    token and ``card_number[-4:]``.
    """

    line: int
    result: ImportResult
    detail: str
    id_number: str
    name: str
    card_number: str
    bank_code: str = ""
    status: CardStatus = CardStatus.active
    categories: frozenset[Category] = frozenset()


def parse_status(text: str) -> CardStatus | None:
    """The status a cell means (正常/active, 挂失/lost, 注销/closed; empty = active), or ``None``.

    >>> parse_status("挂失"), parse_status(" Active "), parse_status(""), parse_status("冻结")
    (<CardStatus.lost: 'lost'>, <CardStatus.active: 'active'>, <CardStatus.active: 'active'>, None)
    """
    word = normalise_cell(text).lower()
    if not word:
        return CardStatus.active
    return STATUS_WORDS.get(word) or (CardStatus(word) if word in CardStatus.__members__ else None)


def parse_categories(text: str) -> frozenset[Category] | None:
    """The categories a cell names (``老年人;残疾人``, ``senior;student``), or ``None`` if any is unknown.

    >>> sorted(parse_categories("老年人；残疾人"))
    [<Category.disabled: 'disabled'>, <Category.senior: 'senior'>]
    >>> parse_categories("老人") is None
    True
    """
    cell = normalise_cell(text)
    for separator in CATEGORY_SEPARATORS[1:]:
        cell = cell.replace(separator, CATEGORY_SEPARATORS[0])
    found: set[Category] = set()
    for word in filter(None, (w.strip().lower() for w in cell.split(CATEGORY_SEPARATORS[0]))):
        category = CATEGORY_WORDS.get(word) or (Category(word) if word in Category.__members__ else None)
        if category is None:
            return None
        found.add(category)
    return frozenset(found)


def check_cardholder_rows(
    lines: Iterable[CardholderLine], bins: BinTable, today: datetime.date
) -> Iterator[CardholderRow]:
    """Check each import row; yield one :class:`CardholderRow` per row, none dropped.

    A row is ``ok`` when its identity number is valid (see
    :func:`engine.disbursement.resident_id.check_id`), the name is non-empty and at most
    ``NAME_CHARS_MAX`` characters, the card number passes the BIN table (Luhn, known BIN,
    length), status and categories are known words, and neither the identity number nor
    the card number appeared on an earlier ``ok`` row of the file.
    """
    ids_seen: set[int] = set()
    pans_seen: set[str] = set()
    for line in lines:
        row = _check_row(line, bins, today, ids_seen, pans_seen)
        if row.result is ImportResult.ok:
            ids_seen.add(id_key(row.id_number))
            pans_seen.add(row.card_number)
        yield row


def _check_row(line: CardholderLine, bins: BinTable, today: datetime.date,
               ids_seen: set[int], pans_seen: set[str]) -> CardholderRow:
    id_number = normalise_id(line.id_number)
    name = normalise_cell(line.name)
    pan = compact_pan(line.card_number)

    def rejected(result: ImportResult, detail: str) -> CardholderRow:
        return CardholderRow(line.line, result, detail, id_number, name, pan)

    if "id_number" in line.numeric_fields:
        return rejected(ImportResult.id_in_scientific_notation, "identity number is a numeric cell (format the column as text)")
    id_check, detail = check_id(id_number, today)
    if id_check is not IdCheck.valid:
        return rejected(ID_CHECK_RESULTS[id_check], detail)
    if not name or len(name) > NAME_CHARS_MAX:
        return rejected(ImportResult.invalid_name, f"name must be 1 to {NAME_CHARS_MAX} characters")
    if "card_number" in line.numeric_fields:
        return rejected(ImportResult.invalid_card_number, "card number is a numeric cell (format the column as text)")
    try:
        bank = bins.lookup(pan)
    except CardNumberError as error:
        return rejected(ImportResult.invalid_card_number, str(error))
    status = parse_status(line.status)
    if status is None:
        return rejected(ImportResult.invalid_status, f"unknown status {line.status!r}")
    categories = parse_categories(line.categories)
    if categories is None:
        return rejected(ImportResult.invalid_category, f"unknown category in {line.categories!r}")
    if id_key(id_number) in ids_seen:
        return rejected(ImportResult.duplicate_id_in_file, "identity number on an earlier row")
    if pan in pans_seen:
        return rejected(ImportResult.duplicate_card_in_file, "card number on an earlier row")
    return CardholderRow(line.line, ImportResult.ok, "", id_number, name, pan, bank.bank_code, status, categories)
