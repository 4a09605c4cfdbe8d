"""A batch file read by a child process gives what reading it here gives."""

from __future__ import annotations

import openpyxl
import pytest

from adapters import read_ahead
from adapters.batch_file import TabularBatchFile, open_batch_file
from adapters.errors import FileEncodingError, FileFormatError
from adapters.read_ahead import ReadAheadBatchFile

BATCH = ("标题,2026年11月\n总笔数,3\n"
         "序号,姓名,身份证号,社会保障卡号,金额（元）,备注\n"
         "1,张三,510121195803142150,6222026465816998396,300.00,\n"
         "\n"
         "2,\"李,四\",51340119720505003x,6214825837354017807,\"1,234.5元\",二月\n"
         "3,王五,5.10121E+17,6259083065450331,12.345,\n"
         "合计,,,,1546.845,\n")


def _both(path, encoding=None):
    here, there = TabularBatchFile(path, encoding), ReadAheadBatchFile(path, encoding)
    return (list(here.lines()), here.declared_totals()), (list(there.lines()), there.declared_totals())


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_lines_and_totals_are_those_read_in_process(tmp_path, monkeypatch, encoding):
    monkeypatch.setattr(read_ahead, "CHUNK_LINES", 2)
    path = tmp_path / "batch.csv"
    path.write_bytes(BATCH.encode(encoding))
    here, there = _both(path)
    assert there == here
    lines, declared = there
    assert [(line.line, line.name, line.amount) for line in lines] == [
        (1, "张三", "300.00"), (2, "李,四", "1,234.5元"), (3, "王五", "12.345")]
    assert [(t.source, t.count, t.amount_text) for t in declared] == [("header", 3, None),
                                                                      ("totals row", None, "1546.845")]


def test_xlsx_numeric_cells_cross_the_pipe(tmp_path):
    book = openpyxl.Workbook()
    for row in (["序号", "姓名", "身份证号", "社会保障卡号", "金额"],
                [1, "李四", 510121195803142150, "6222026465816998396", 150.5]):
        book.active.append(row)
    book.save(tmp_path / "batch.xlsx")
    here, there = _both(tmp_path / "batch.xlsx")
    assert there == here
    assert there[0][0].numeric_fields == frozenset({"id_number", "amount", "sequence"})


def test_a_file_error_comes_after_the_lines_before_it(tmp_path, monkeypatch):
    monkeypatch.setattr(read_ahead, "CHUNK_LINES", 1)
    path = tmp_path / "batch.csv"
    path.write_text(BATCH.replace("3,王五", "3,王五,x,y,z,w,v"), encoding="utf-8")
    source, seen = ReadAheadBatchFile(path), []
    with pytest.raises(FileFormatError, match="batch.csv: row 7 has more cells than the header"):
        for line in source.lines():
            seen.append(line.line)
    assert seen == [1, 2]
    path.write_bytes(BATCH.encode("utf-8") + b"\xff\xfe")
    with pytest.raises(FileEncodingError, match="byte"):
        list(ReadAheadBatchFile(path, "utf-8").lines())


def test_a_consumer_may_stop_early(tmp_path, monkeypatch):
    monkeypatch.setattr(read_ahead, "CHUNK_LINES", 1)
    path = tmp_path / "batch.csv"
    path.write_text(BATCH, encoding="utf-8")
    lines = ReadAheadBatchFile(path).lines()
    assert next(lines).line == 1
    lines.close()


def test_open_batch_file_reads_large_files_ahead(tmp_path, monkeypatch):
    path = tmp_path / "batch.csv"
    path.write_text(BATCH, encoding="utf-8")
    assert isinstance(open_batch_file(path), TabularBatchFile)
    monkeypatch.setattr(read_ahead, "READ_AHEAD_BYTES_MIN", path.stat().st_size)
    assert isinstance(open_batch_file(path), ReadAheadBatchFile)
