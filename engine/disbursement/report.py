"""What a department gets back about its batch: one status per input line, as the CSV
result file (:mod:`engine.disbursement.result_file`) or pain.002.001.10.

A line's status: ``rejected`` (validation reason), ``accepted`` (not yet paid, or the bank
has not answered), ``paid`` (the bank's pacs.002 ``ACSC``), ``returned`` (the bank rejected
it, ``RJCT``, or returned it later, pacs.004; the money went back to the funding account).
The CSV ``reason`` column is only ever a validation code (issue 6), so it is empty for a
returned line; the bank's ISO 20022 reason code (``AC04``) is in the last column,
``bank_reason``.

In pain.002 a line is ``RJCT`` with the engine's reason as ``Prtry`` (rejected), ``RJCT``
with the bank's ISO code as ``Cd`` (returned), ``ACSC`` (paid) or ``ACCP`` (accepted); the
group status is ``ACSC`` when every line was paid, ``RJCT`` when none was accepted,
``PART`` when some lines were rejected or returned, else ``ACCP``. Lines never posted have
no EndToEndId of a payment, so theirs is ``L`` + the line number.

Reports stream (:func:`write_report`): a stored chunk of lines at a time is read and
written to a file next to the destination, a pain.002 is validated against the XSD while
streaming through the written file, and only then is the file moved into place, so a
million-line batch needs no more memory than a small one and nothing invalid leaves.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from adapters.iso20022 import pain002, schema
from engine.disbursement.execution import line_end_to_end_id, transfer_base_id
from engine.disbursement.lifecycle import LineStatus
from engine.disbursement.lines import LineFields, open_fields
from engine.disbursement.result_file import RESULT_COLUMNS, inert_cell, result_writer
from engine.disbursement.results import LineResult
from engine.disbursement.store import DisbursementStore

REPORT_FORMATS = ("csv", "pain002")
_PAIN002_STATUS = {LineStatus.rejected: "RJCT", LineStatus.returned: "RJCT", LineStatus.paid: "ACSC",
                   LineStatus.accepted: "ACCP"}


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One input line's outcome: ``reason`` is a :class:`LineResult` name or ``""``;
    ``bank_reason`` the bank's ISO 20022 code of a returned line (else ``""``); ``fields``
    the line's own fields as written (empty when not asked for)."""

    line: int
    status: LineStatus
    reason: str
    bank_reason: str
    end_to_end_id: str
    fields: LineFields | tuple[()]


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


async def report_lines(store: DisbursementStore, batch_id: int, *,
                       with_fields: bool = True) -> AsyncIterator[ReportLine]:
    """Every line of the batch in file order (one stored chunk in memory at a time); the
    line's own fields are opened (key service) only ``with_fields``.

    Raises ``NotFoundError`` for an unknown batch.
    """
    batch = await store.batch(batch_id)
    async with store.pool.acquire() as connection:
        base_id = await transfer_base_id(connection, batch_id)
        chunks = await connection.fetch(
            "SELECT chunk, first_line, posted_messages IS NOT NULL AS posted FROM disbursement_line_fields"
            " WHERE batch_id = $1 ORDER BY chunk", batch_id)
    ends = [chunk["first_line"] for chunk in chunks[1:]] + [batch.lines_count + 1]
    for chunk, end_line in zip(chunks, ends):
        async with store.pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT line, result FROM disbursement_lines WHERE batch_id = $1 AND line >= $2 AND line < $3"
                " ORDER BY line", batch_id, chunk["first_line"], end_line)
            # A posted chunk's lines have payments under EndToEndIds derived from their line.
            paid = {row["line"]: line_end_to_end_id(base_id, row["line"]) for row in rows
                    if chunk["posted"] and row["result"] == LineResult.ok}
            payments = {p["end_to_end_id"]: p for p in await connection.fetch(
                "SELECT end_to_end_id, status, returned, reason_code FROM settlement_payments"
                " WHERE end_to_end_id = ANY($1::text[])", list(paid.values()))} if paid else {}
            sealed = await connection.fetchval(
                "SELECT sealed FROM disbursement_line_fields WHERE batch_id = $1 AND chunk = $2",
                batch_id, chunk["chunk"]) if with_fields else None
        fields = (await open_fields(store.keys, batch.content_sha256, chunk["first_line"], sealed)
                  if with_fields else None)
        assert fields is None or len(rows) == len(fields), "a stored chunk has a row per line"
        for index, row in enumerate(rows):
            end_to_end_id = paid.get(row["line"], "")
            payment = payments.get(end_to_end_id)
            status = line_status(row["result"], payment and payment["status"], bool(payment and payment["returned"]))
            bank_reason = payment["reason_code"] if status is LineStatus.returned else ""
            yield ReportLine(row["line"], status, LineResult(row["result"]).reason, bank_reason,
                             end_to_end_id if payment else f"L{row['line']}", fields[index] if fields else ())


def csv_row(line: ReportLine) -> tuple[str, ...]:
    """The result-file row of a report line (columns :data:`RESULT_COLUMNS`).

    >>> csv_row(ReportLine(2, LineStatus.paid, "", "", "OC1", ("2", "张三", "x", "6222", "=1", "", "")))
    ('2', 'paid', '', '2', '张三', 'x', '6222', "'=1", '', '', '')
    >>> csv_row(ReportLine(3, LineStatus.returned, "", "AC04", "OC2", ("3", "李四", "y", "6259", "2", "", "")))[-1]
    'AC04'
    """
    assert len(line.fields) == len(RESULT_COLUMNS) - 4
    return (str(line.line), line.status.value, line.reason, *(inert_cell(f) for f in line.fields), line.bank_reason)


def pain002_line(batch_id: int, line: ReportLine) -> pain002.LineStatus:
    """The pain.002 ``TxInfAndSts`` of a report line (a returned line carries the bank's code)."""
    return pain002.LineStatus(f"onecard-batch-{batch_id}", line.end_to_end_id, _PAIN002_STATUS[line.status],
                              line.bank_reason or line.reason)


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


async def write_report(store: DisbursementStore, batch_id: int, report_format: str, path: Path,
                       created_at: dt.datetime) -> int:
    """Write the batch's report to ``path`` (streaming, see the module docstring) and return
    the number of lines: ``csv`` is the result file in UTF-8 with a BOM (Excel), ``pain002``
    a pain.002.001.10 (``MsgId`` ``onecard-rpt-<batch>-<ms>``, ``OrgnlMsgId``
    ``onecard-batch-<batch>``). ``path`` is left as it was if anything fails.

    Raises
    ------
    NotFoundError
        No such batch.
    adapters.errors.SchemaValidationError
        The pain.002 written would not be valid (nothing is left at ``path``).
    """
    assert report_format in REPORT_FORMATS, report_format
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:  # named by the path asked for, not the temporary one
        raise type(error)(error.errno, error.strerror, str(path)) from None
    try:
        if report_format == "csv":
            with open(handle, "w", encoding="utf-8-sig", newline="") as stream:
                count = await _write_csv(store, batch_id, stream)
        else:
            with open(handle, "wb") as stream:
                count = await _write_pain002(store, batch_id, stream, created_at)
            schema.validate_file(temporary, pain002.MESSAGE_DEFINITION)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return count


async def _write_csv(store: DisbursementStore, batch_id: int, stream) -> int:
    writer = result_writer(stream)
    count = 0
    async for line in report_lines(store, batch_id):
        writer.writerow(csv_row(line))
        count += 1
    return count


async def _write_pain002(store: DisbursementStore, batch_id: int, stream, created_at: dt.datetime) -> int:
    # The group status comes before the lines, so a first pass (without the lines' own
    # fields, nothing decrypted) counts the statuses.
    counts: dict[LineStatus, int] = {}
    async for line in report_lines(store, batch_id, with_fields=False):
        counts[line.status] = counts.get(line.status, 0) + 1
    stamp = int(created_at.timestamp() * 1000)
    writer = pain002.Writer(stream, f"onecard-rpt-{batch_id}-{stamp}", created_at, f"onecard-batch-{batch_id}",
                            group_status=group_status(counts), original_number_of_transactions=sum(counts.values()))
    async for line in report_lines(store, batch_id, with_fields=False):
        writer.add(pain002_line(batch_id, line))
    writer.close()
    return writer.lines
