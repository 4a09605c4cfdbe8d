import openpyxl
import pytest

from adapters.batch_file import TabularBatchFile
from adapters.errors import FileFormatError
from adapters.tabular_rows import is_xlsx


def workbook(tmp_path, rows, name="batch.xlsx"):
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


HEADER = ["序号", "姓名", "身份证号", "社会保障卡号", "金额（元）", "补贴项目"]


def test_text_cells_read_as_written_numeric_cells_flagged(tmp_path):
    path = workbook(tmp_path, [
        ["2026年11月发放表"],
        HEADER,
        [1, "张三", "510121195803142150", "6222026465816998396", 300, "高龄津贴"],
        [2, "李四", 510121195803142150, 6222026465816998396, 150.5, None],
        [3, "王五", 5.10121195803142e17, "6222026465816998396", 12.345, None],
        ["合计", "共3人", None, None, 462.845, None],
    ])
    source = TabularBatchFile(path)
    lines = list(source.lines())
    assert [(l.line, l.id_number, l.amount, l.numeric_fields) for l in lines] == [
        (1, "510121195803142150", "300", frozenset({"amount", "sequence"})),
        # A number cell holds a binary double: the digits are already lost when read.
        (2, "510121195803142100", "150.5", frozenset({"id_number", "card_number", "amount", "sequence"})),
        (3, "510121195803142000", "12.345", frozenset({"id_number", "amount", "sequence"})),
    ]
    assert [(t.source, t.count, t.amount_text) for t in source.declared_totals()] == [("totals row", 3, "462.845")]


def test_xlsx_is_recognised_by_content_not_name(tmp_path):
    path = workbook(tmp_path, [HEADER], name="batch.csv")
    assert is_xlsx(path)
    assert list(TabularBatchFile(path).lines()) == []


def test_encoding_for_xlsx_is_a_usage_error(tmp_path):
    path = workbook(tmp_path, [HEADER])
    with pytest.raises(FileFormatError, match="CSV only"):
        TabularBatchFile(path, "gbk")


def test_broken_xlsx_is_refused(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(FileFormatError, match="not a readable XLSX"):
        list(TabularBatchFile(path).lines())


def test_empty_cells_beyond_the_header_are_ignored_values_are_refused(tmp_path):
    row = [1, "张三", "510121195803142150", "6222026465816998396", 300, "高龄津贴"]
    path = workbook(tmp_path, [HEADER, row + [None, None, ""]])
    assert [line.line for line in TabularBatchFile(path).lines()] == [1]
    path = workbook(tmp_path, [HEADER, row + [None, "备注写在表外"]], name="note.xlsx")
    with pytest.raises(FileFormatError, match="more cells than the header"):
        list(TabularBatchFile(path).lines())
