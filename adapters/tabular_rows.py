"""Rows of cells from a CSV or XLSX file, streamed (never the whole file in memory).

Each row is a :class:`Row`: the cells as text, and the positions of cells that were
numeric in the spreadsheet. A numeric cell is reported, never repaired: Excel keeps only
15 significant digits, so an 18-digit identity number typed into a number cell has already
lost its last digits (``510121195803142150`` becomes ``510121195803142000``).

CSV: UTF-8 (with or without BOM), GBK or GB18030, detected or declared (see
:mod:`adapters.text_encoding`); RFC 4180 quoting. XLSX: the first worksheet, read with
openpyxl in read-only mode.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from adapters.errors import FileFormatError
from adapters.text_encoding import resolve_encoding

XLSX_MAGIC = b"PK\x03\x04"
NO_NUMERIC_CELLS: frozenset[int] = frozenset()


class Row(NamedTuple):
    """One row: ``cells`` as text (``""`` for empty), ``numeric`` the 0-based positions of
    cells that held a number rather than text (XLSX only; always empty for CSV)."""

    cells: list[str]
    numeric: frozenset[int]


def is_xlsx(path: Path) -> bool:
    """Whether ``path`` is an XLSX (ZIP) file, by its first bytes rather than its name."""
    with open(path, "rb") as stream:
        return stream.read(len(XLSX_MAGIC)) == XLSX_MAGIC


def csv_rows(path: Path, encoding: str | None = None) -> Iterator[Row]:
    """Rows of the CSV file at ``path`` in ``encoding`` (detected when ``None``).

    Raises
    ------
    FileEncodingError
        The bytes are not valid in the detected or declared encoding (checked before the
        first row is returned, so no row of an undecodable file is ever seen).
    FileFormatError
        Broken quoting, or a cell longer than the csv module's limit (row named).
    """
    decoder = resolve_encoding(path, encoding)
    with open(path, encoding=decoder, errors="strict", newline="") as text:
        reader = csv.reader(text, strict=True)
        try:
            for cells in reader:
                yield Row(cells, NO_NUMERIC_CELLS)
        except csv.Error as error:
            raise FileFormatError(f"{path.name}: row {reader.line_num}: {error}") from None


def cell_text(value: object) -> str:
    """The text of one spreadsheet cell value as openpyxl returns it.

    Floats are written with their shortest round-trip digits (what Excel displays), never
    rounded further, so ``0.1 + 0.2`` stays ``0.30000000000000004`` and is rejected later
    as too precise rather than silently paid as 0.30.

    >>> cell_text(None), cell_text(12.5), cell_text(5.10121195803142e17), cell_text(7)
    ('', '12.5', '510121195803142000', '7')
    >>> cell_text(0.1 + 0.2)
    '0.30000000000000004'
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _without_trailing_empty(values: tuple[object, ...]) -> tuple[object, ...]:
    end = len(values)
    while end and (values[end - 1] is None or values[end - 1] == ""):
        end -= 1
    return values[:end]


def xlsx_rows(path: Path) -> Iterator[Row]:
    """Rows of the first worksheet of the XLSX file at ``path``.

    Raises
    ------
    FileFormatError
        The file is not a readable XLSX workbook.
    """
    import openpyxl  # imported here: CSV-only runs do not pay for it

    # A stream rather than the path: openpyxl refuses paths not ending in .xlsx.
    with open(path, "rb") as stream:
        try:
            workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except Exception as error:  # noqa: BLE001 - openpyxl raises many unrelated types
            raise FileFormatError(
                f"{path.name}: not a readable XLSX workbook ({error.__class__.__name__})"
            ) from None
        try:
            for values in workbook.worksheets[0].iter_rows(values_only=True):
                # Empty cells after the last value carry nothing (a formatted but empty
                # column); dropping them keeps the width check for CSV commas meaningful.
                values = _without_trailing_empty(values)
                numeric = frozenset(
                    i for i, v in enumerate(values)
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                )
                yield Row([cell_text(v) for v in values], numeric or NO_NUMERIC_CELLS)
        finally:
            workbook.close()


def file_rows(path: Path, encoding: str | None = None) -> Iterator[Row]:
    """Rows of ``path``, XLSX or CSV by content; ``encoding`` applies to CSV only.

    Raises
    ------
    FileFormatError
        ``encoding`` was given for an XLSX file, or see :func:`csv_rows`, :func:`xlsx_rows`.
    """
    if is_xlsx(path):
        if encoding is not None:
            raise FileFormatError(f"{path.name}: is an XLSX workbook; --encoding applies to CSV only")
        return xlsx_rows(path)
    return csv_rows(path, encoding)
