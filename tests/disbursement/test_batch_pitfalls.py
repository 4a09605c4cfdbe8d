"""The "Batch files from departments" items of field-pitfalls.md, one test each."""

import datetime

import openpyxl
import pytest

from adapters.batch_file import TabularBatchFile
from adapters.errors import FileEncodingError
from engine.disbursement.registry import CardholderRecord, CardStatus
from engine.disbursement.results import LineResult
from engine.disbursement.validation import BatchValidator, ValidationContext, validate_source

TODAY = datetime.date(2026, 1, 1)
ZHANG = CardholderRecord("110105199001011232", "张三", CardStatus.active, "6222026465816998396", "8396", "ICBC")
RARE = CardholderRecord("51340119720505003X", "王\U0002001a", CardStatus.active, "6214825837354017807", "7807", "CDCB")
REGISTRY = {r.id_number: r for r in (ZHANG, RARE)}
HEADER = ["序号", "姓名", "身份证号", "社会保障卡号", "金额（元）"]


def validate(path, encoding=None):
    source = TabularBatchFile(path, encoding)
    validator = BatchValidator(ValidationContext(REGISTRY.get, lambda _: False, lambda pan: pan, 200_000, TODAY))
    outcomes = list(validate_source(source, validator))
    return outcomes, validator.finish(source.declared_totals())


def csv_file(tmp_path, rows, encoding, name="batch.csv"):
    path = tmp_path / name
    path.write_bytes("\r\n".join(",".join(r) for r in [HEADER, *rows]).encode(encoding) + b"\r\n")
    return path


def test_excel_damage_is_rejected_with_reason_and_row_never_repaired(tmp_path):
    rows = [["1", "张三", "1.10105E+17", "6222026465816998396", "100"],
            ["2", "张三", "110105199001011000", "6222026465816998396", "100"]]
    outcomes, summary = validate(csv_file(tmp_path, rows, "utf-8"))
    assert [(o.line.line, o.result) for o in outcomes] == [
        (1, LineResult.id_in_scientific_notation), (2, LineResult.invalid_id_checksum)]
    assert summary.accepted_count == 0

    book = openpyxl.Workbook()
    book.active.append(HEADER)
    book.active.append([1, "张三", 110105199001011232, "6222026465816998396", 100])
    book.save(tmp_path / "batch.xlsx")
    [outcome], summary = validate(tmp_path / "batch.xlsx")
    assert (outcome.line.line, outcome.result, summary.accepted_count) == (1, LineResult.id_in_scientific_notation, 0)


def test_same_batch_in_utf8_bom_gbk_and_xlsx_gives_identical_rows_totals_and_hash(tmp_path):
    rows = [["1", "张三", "110105199001011232", "6222026465816998396", "1,000.50"],
            ["2", "李四", "510121195803142150", "6222026465816998396", "20"],
            ["合计", "共2人", "", "", "1,020.50"]]
    quoted = [[f'"{c}"' for c in r] for r in rows]
    results = [validate(csv_file(tmp_path, quoted, encoding, f"{encoding}.csv"))
               for encoding in ("utf-8", "utf-8-sig", "gbk")]
    book = openpyxl.Workbook()
    for row in [HEADER, *rows]:
        book.active.append(row)
    book.save(tmp_path / "batch.xlsx")
    results.append(validate(tmp_path / "batch.xlsx"))
    first_outcomes, first_summary = results[0]
    assert [o.result for o in first_outcomes] == [LineResult.ok, LineResult.cardholder_not_found]
    for outcomes, summary in results[1:]:
        assert [(o.line, o.result, o.amount_minor) for o in outcomes] == [
            (o.line, o.result, o.amount_minor) for o in first_outcomes]
        assert summary == first_summary


def test_gb18030_keeps_rare_characters_exactly(tmp_path):
    rows = [["1", "王\U0002001a", "51340119720505003X", "6214825837354017807", "10"]]
    [outcome], _ = validate(csv_file(tmp_path, rows, "gb18030"))
    assert outcome.line.name == "王\U0002001a" and outcome.result is LineResult.ok


def test_undecodable_file_is_refused_never_replaced(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_bytes("序号,姓名,身份证号,社会保障卡号,金额\n1,".encode("gbk") + b"\xff\xfe\xfd" + b",x,y,1\n")
    with pytest.raises(FileEncodingError):
        validate(path)


def test_duplicate_rows_paid_once_and_reupload_has_the_same_hash(tmp_path):
    row = ["1", "张三", "110105199001011232", "6222026465816998396", "100"]
    path = csv_file(tmp_path, [row, ["2", *row[1:]]], "gbk")
    outcomes, summary = validate(path)
    assert [o.result for o in outcomes] == [LineResult.ok, LineResult.duplicate_in_batch]
    assert (summary.accepted_count, summary.accepted_minor) == (1, 10_000)
    # The store refuses a second batch with a content hash it already holds.
    assert validate(csv_file(tmp_path, [row, ["2", *row[1:]]], "utf-8", "again.csv"))[1].content_sha256 == summary.content_sha256
