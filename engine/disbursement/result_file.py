"""The CSV result file a department gets back: one row per input line.

Columns: ``line`` (1 = first data line), ``status`` (accepted, rejected, paid, returned),
``reason`` (a :class:`~engine.disbursement.results.LineResult` code, empty when none: a
returned line has none), then the line's own fields as it wrote them (``sequence``,
``name``, ``id_number``, ``card_number``, ``amount``, ``item``, ``remark``), and last
``bank_reason``: the ISO 20022 reason code the bank gave for a returned line (``AC04``
closed account), empty otherwise (always empty before execution).

The file is opened in Excel, so a cell the department's file carried that Excel would run
as a formula (``=HYPERLINK(...)``, ``+``, ``@``, or ``-`` not followed by a digit) is
written with a leading ``'`` (OWASP "CSV injection"); numbers such as ``-50.00`` are left
as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from adapters.batch_file import BatchLine
from engine.disbursement.lifecycle import LineStatus
from engine.disbursement.results import LineResult

RESULT_COLUMNS = ("line", "status", "reason", "sequence", "name", "id_number", "card_number",
                  "amount", "item", "remark", "bank_reason")
FORMULA_STARTS = ("=", "+", "@", "\t", "\r")


def inert_cell(text: str) -> str:
    """``text``, prefixed with ``'`` if a spreadsheet would evaluate it as a formula.

    >>> inert_cell("=1+1"), inert_cell("-50.00"), inert_cell("-cmd"), inert_cell("张三")
    ("'=1+1", '-50.00', "'-cmd", '张三')
    """
    if text.startswith(FORMULA_STARTS) or (text.startswith("-") and not text[1:2].isdigit()):
        return "'" + text
    return text


def result_row(line: BatchLine, status: LineStatus, result: LineResult) -> tuple[str, ...]:
    """One result-file row for ``line``.

    >>> line = BatchLine(3, "510121195803142151", "张三", "6222026465816998396", "100", sequence="3")
    >>> result_row(line, LineStatus.rejected, LineResult.invalid_id_checksum)[:4]
    ('3', 'rejected', 'invalid_id_checksum', '3')
    """
    assert (status is LineStatus.rejected) is (result is not LineResult.ok), "rejected lines carry a reason"
    fields = (line.sequence, line.name, line.id_number, line.card_number, line.amount, line.item, line.remark)
    return (str(line.line), status.value, result.reason, *(inert_cell(f) for f in fields), "")


def result_writer(stream: TextIO):
    """A ``csv.writer`` on ``stream`` (opened with ``newline=""``), the header written."""
    writer = csv.writer(stream)
    writer.writerow(RESULT_COLUMNS)
    return writer


def write_result_csv(stream: TextIO, rows: Iterable[tuple[str, ...]]) -> int:
    """Write the header and ``rows`` to ``stream`` (opened with ``newline=""``); return the row count."""
    writer = result_writer(stream)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count
