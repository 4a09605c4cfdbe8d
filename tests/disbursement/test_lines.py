"""The line spool: COPY CSV rows and msgpack fields per chunk, read back in order."""

from __future__ import annotations

import csv
import io

import pytest

from adapters.batch_file import BatchLine
from engine.disbursement.lines import LINE_COLUMNS, LineSpool, copy_rows
from engine.disbursement.registry import CardholderRecord, CardStatus
from engine.disbursement.results import LineResult
from engine.disbursement.validation import LineOutcome
from msgspec.msgpack import decode

HOLDER = CardholderRecord("510121195803142150", '阿依古丽,"买买提"\n', CardStatus.active, "ab" * 16, "8396", "ICBC")


def _outcome(number: int, result: LineResult, amount_minor: int | None) -> LineOutcome:
    line = BatchLine(number, "510121195803142150", "张三", "6222026465816998396", "3.00", remark=f"r{number}")
    return LineOutcome(line, result, "", "510121195803142150", amount_minor, HOLDER)


async def test_rows_and_fields_come_back_per_chunk_in_order():
    spool = LineSpool()
    spool.reserve(42)
    spool.add_chunk([_outcome(1, LineResult.ok, 300), _outcome(2, LineResult.amount_precision, None)])
    spool.add_chunk([_outcome(3, LineResult.duplicate_in_batch, 300)])
    blobs = [blob async for blob in spool.rows()]
    rows = [row for blob in blobs for row in csv.reader(io.StringIO(blob.decode()))]
    # An empty unquoted value is NULL to COPY; the name keeps its comma, quotes and newline.
    assert rows == [["42", "1", "0", "300", "ab" * 16, "ICBC", '阿依古丽,"买买提"\n'],
                    ["42", "2", "10", "", "", "", ""], ["42", "3", "12", "300", "", "", ""]]
    assert len(LINE_COLUMNS) == len(rows[0])
    fields = [(first, decode(blob)) for first, blob in spool.fields()]
    assert [(first, [f[6] for f in chunk]) for first, chunk in fields] == [(1, ["r1", "r2"]), (3, ["r3"])]
    assert fields[0][1][0] == ["", "张三", "510121195803142150", "6222026465816998396", "3.00", "", "r1"]
    assert (spool.chunks, spool.lines) == (2, 3)
    spool.close()


def test_a_spool_needs_its_batch_id_first_and_chunks_in_order():
    spool = LineSpool()
    with pytest.raises(AssertionError, match="reserved first"):
        spool.add_chunk([_outcome(1, LineResult.ok, 300)])
    spool.reserve(7)
    with pytest.raises(AssertionError, match="file order"):
        spool.add_chunk([_outcome(2, LineResult.ok, 300)])
    spool.close()


def test_copy_rows_quote_texts_and_leave_null_unquoted():
    rows = copy_rows(7, [_outcome(5, LineResult.ok, 300), _outcome(6, LineResult.amount_not_positive, 0),
                         _outcome(7, LineResult.invalid_amount_format, None)])
    assert rows == ('7,5,0,300,"' + "ab" * 16 + '","ICBC","阿依古丽,""买买提""\n"\n'
                    '7,6,9,0,,,\n7,7,8,,,,\n').encode()
    assert list(csv.reader(io.StringIO(rows.decode()))) == [
        ["7", "5", "0", "300", "ab" * 16, "ICBC", HOLDER.name], ["7", "6", "9", "0", "", "", ""],
        ["7", "7", "8", "", "", "", ""]]
