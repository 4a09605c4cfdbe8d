"""What a department gets back about its batch: one status per input line, as the CSV
result file (:mod:`engine.disbursement.result_file`) or pain.002.001.10.

A line's status: ``rejected`` (validation reason), ``accepted`` (not yet paid, or the bank
has not answered), ``paid`` (the bank's pacs.002 ``ACSC``), ``returned`` (the bank rejected
it, ``RJCT``, or returned it later, pacs.004; the money went back to the funding account).
For a returned line the CSV ``reason`` column is the bank's ISO reason code (``AC04``).

In pain.002 a line is ``RJCT`` with the engine's reason as ``Prtry`` (rejected), ``RJCT``
with the bank's ISO code (returned), ``ACSC`` (paid) or ``ACCP`` (accepted); the group
status is ``ACSC`` when every line was paid, ``RJCT`` when none was accepted, ``PART``
when some lines were rejected or returned, else ``ACCP``. Lines never posted have no
EndToEndId of a payment, so theirs is ``L`` + the line number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from adapters.iso20022 import pain002
from engine.disbursement.lifecycle import LineStatus
from engine.disbursement.lines import LineFields, open_fields
from engine.disbursement.result_file import RESULT_COLUMNS, inert_cell
from engine.disbursement.results import LineResult
from engine.disbursement.store import DisbursementStore

REPORT_FORMATS = ("csv", "pain002")
_PAIN002_STATUS = {LineStatus.rejected: "RJCT", LineStatus.returned: "RJCT", LineStatus.paid: "ACSC",
                   LineStatus.accepted: "ACCP"}


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One input line's outcome: ``reason`` is a :class:`LineResult` name, a bank reason
    code (returned) or ``""``; ``fields`` the line's own fields as written."""

    line: int
    status: LineStatus
    reason: str
    end_to_end_id: str
    fields: LineFields


def line_status(result: int, payment_status: str | None, returned: bool) -> LineStatus:
    """The report status of a stored line given its payment's bank status.

    >>> line_status(5, None, False), line_status(0, "SENT", False), line_status(0, "ACSC", True)
    (<LineStatus.rejected: 'rejected'>, <LineStatus.accepted: 'accepted'>, <LineStatus.returned: 'returned'>)
    """
    if result != LineResult.ok:
        return LineStatus.rejected
    if returned or payment_status == "RJCT":
        return LineStatus.returned
    return LineStatus.paid if payment_status == "ACSC" else LineStatus.accepted


async def report_lines(store: DisbursementStore, batch_id: int) -> AsyncIterator[ReportLine]:
    """Every line of the batch in file order (one stored chunk in memory at a time).

    Raises ``NotFoundError`` for an unknown batch.
    """
    batch = await store.batch(batch_id)
    async with store.pool.acquire() as connection:
        chunks = await connection.fetch(
            "SELECT first_line, sealed FROM disbursement_line_fields WHERE batch_id = $1 ORDER BY chunk", batch_id)
    for chunk in chunks:
        fields = await open_fields(store.keys, batch.content_sha256, chunk["first_line"], chunk["sealed"])
        async with store.pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT l.line, l.result, l.end_to_end_id, p.status, p.returned, p.reason_code"
                " FROM disbursement_lines l LEFT JOIN settlement_payments p USING (end_to_end_id)"
                " WHERE l.batch_id = $1 AND l.line >= $2 AND l.line < $3 ORDER BY l.line",
                batch_id, chunk["first_line"], chunk["first_line"] + len(fields))
        assert len(rows) == len(fields), "a stored chunk has a row per line"
        for row, own in zip(rows, fields):
            status = line_status(row["result"], row["status"], bool(row["returned"]))
            reason = row["reason_code"] if status is LineStatus.returned else LineResult(row["result"]).reason
            yield ReportLine(row["line"], status, reason or "", row["end_to_end_id"] or f"L{row['line']}", own)


def csv_row(line: ReportLine) -> tuple[str, ...]:
    """The result-file row of a report line (columns :data:`RESULT_COLUMNS`).

    >>> csv_row(ReportLine(2, LineStatus.paid, "", "OC1", ("2", "张三", "x", "6222", "=1", "", "")))
    ('2', 'paid', '', '2', '张三', 'x', '6222', "'=1", '', '')
    """
    assert len(line.fields) == len(RESULT_COLUMNS) - 3
    return (str(line.line), line.status.value, line.reason, *(inert_cell(f) for f in line.fields))


def pain002_line(batch_id: int, line: ReportLine) -> pain002.LineStatus:
    """The pain.002 ``TxInfAndSts`` of a report line."""
    return pain002.LineStatus(f"onecard-batch-{batch_id}", line.end_to_end_id, _PAIN002_STATUS[line.status],
                              line.reason)


def group_status(counts: dict[LineStatus, int]) -> str:
    """The pain.002 group status for the count of lines per status (module docstring).

    >>> group_status({LineStatus.paid: 3}), group_status({LineStatus.paid: 2, LineStatus.returned: 1})
    ('ACSC', 'PART')
    """
    total = sum(counts.values())
    if counts.get(LineStatus.paid, 0) == total:
        return "ACSC"
    if counts.get(LineStatus.rejected, 0) == total:
        return "RJCT"
    if counts.get(LineStatus.rejected) or counts.get(LineStatus.returned):
        return "PART"
    return "ACCP"


async def build_pain002(store: DisbursementStore, batch_id: int, created_at: dt.datetime) -> bytes:
    """The batch's pain.002.001.10, validated against the XSD (builds the whole report in memory).

    ``MsgId`` is ``onecard-rpt-<batch>-<ms>``; ``OrgnlMsgId`` ``onecard-batch-<batch>``.
    """
    lines = [line async for line in report_lines(store, batch_id)]
    counts: dict[LineStatus, int] = {}
    for line in lines:
        counts[line.status] = counts.get(line.status, 0) + 1
    stamp = int(created_at.timestamp() * 1000)
    return pain002.build(f"onecard-rpt-{batch_id}-{stamp}", created_at, f"onecard-batch-{batch_id}",
                         group_status=group_status(counts), lines=[pain002_line(batch_id, x) for x in lines],
                         original_number_of_transactions=len(lines))

