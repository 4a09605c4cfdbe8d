"""Batch lines read and prepared by a child process equal those read here."""

from __future__ import annotations

import datetime

import msgspec
import openpyxl
import pytest
from hypothesis import given, strategies as st
from msgspec.msgpack import decode

from adapters.batch_file import BatchLine, TabularBatchFile
from adapters.errors import FileEncodingError, FileFormatError
from engine.disbursement import reading
from engine.disbursement.reading import InProcessReader, ReadAheadReader, chunk_reader
from engine.disbursement.validation import PreparedLine, prepare_line

TODAY = datetime.date(2026, 1, 1)
BATCH = ("标题,2026年11月\n总笔数,3\n"
         "序号,姓名,身份证号,社会保障卡号,金额（元）,备注\n"
         "1,张三,510121195803142150,6222026465816998396,300.00,\n"
         "\n"
         "2,\"李,四\",51340119720505003x,6214825837354017807,\"1,234.5元\",二月\n"
         "3,王五,5.10121E+17,6259083065450331,12.345,\n"
         "合计,,,,1546.845,\n")


def _both(path, chunk_lines, encoding=None):
    here = InProcessReader(TabularBatchFile(path, encoding), TODAY, chunk_lines)
    there = ReadAheadReader(path, encoding, TODAY, chunk_lines)
    return (list(here.chunks()), here.declared_totals()), (list(there.chunks()), there.declared_totals())


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_chunks_and_totals_are_those_read_in_process(tmp_path, encoding):
    path = tmp_path / "batch.csv"
    path.write_bytes(BATCH.encode(encoding))
    here, there = _both(path, 2)
    assert there == here
    chunks, declared = there
    assert [[(line.line, line.name, prepared.amount_minor) for line, prepared in zip(*chunk[:2])]
            for chunk in chunks] == [
        [(1, "张三", 30000), (2, "李,四", 123450)], [(3, "王五", None)]]
    assert chunks[0][1][1].id_number == "51340119720505003X"
    assert decode(chunks[1][2]) == [["3", "王五", "5.10121E+17", "6259083065450331", "12.345", "", ""]]
    assert [(t.source, t.count, t.amount_text) for t in declared] == [("header", 3, None),
                                                                      ("totals row", None, "1546.845")]


def test_xlsx_numeric_cells_cross_the_pipe(tmp_path):
    book = openpyxl.Workbook()
    for row in (["序号", "姓名", "身份证号", "社会保障卡号", "金额"],
                [1, "李四", 510121195803142150, "6222026465816998396", 150.5]):
        book.active.append(row)
    book.save(tmp_path / "batch.xlsx")
    here, there = _both(tmp_path / "batch.xlsx", 10)
    assert there == here
    assert there[0][0][0][0].numeric_fields == frozenset({"id_number", "amount", "sequence"})


def test_a_file_error_comes_after_the_lines_before_it(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(BATCH.replace("3,王五", "3,王五,x,y,z,w,v"), encoding="utf-8")
    seen = []
    with pytest.raises(FileFormatError, match="batch.csv: row 7 has more cells than the header"):
        for lines, _prepared, _fields, _content in ReadAheadReader(path, None, TODAY, 1).chunks():
            seen.extend(line.line for line in lines)
    assert seen == [1, 2]
    path.write_bytes(BATCH.encode("utf-8") + b"\xff\xfe")
    with pytest.raises(FileEncodingError, match="byte"):
        list(ReadAheadReader(path, "utf-8", TODAY, 1).chunks())


def test_a_consumer_may_stop_early(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(BATCH, encoding="utf-8")
    chunks = ReadAheadReader(path, None, TODAY, 1).chunks()
    assert next(chunks)[0][0].line == 1
    chunks.close()


def test_large_tabular_files_are_read_ahead(tmp_path, monkeypatch):
    path = tmp_path / "batch.csv"
    path.write_text(BATCH, encoding="utf-8")
    assert isinstance(chunk_reader(TabularBatchFile(path), TODAY, 10), InProcessReader)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", path.stat().st_size)
    assert isinstance(chunk_reader(TabularBatchFile(path), TODAY, 10), ReadAheadReader)


@given(st.builds(BatchLine, line=st.just(1), id_number=st.text(max_size=20), name=st.text(max_size=10),
                 card_number=st.text("0123456789 -", max_size=22),
                 amount=st.one_of(st.text(max_size=12), st.decimals(allow_nan=False, allow_infinity=False,
                                                                    places=3).map(str))))
def test_a_prepared_line_crosses_the_pipe_unchanged(line):
    prepared = prepare_line(line, TODAY)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(prepared), type=PreparedLine) == prepared
