import datetime

import pytest

from adapters.cardholder_file import cardholder_lines
from adapters.errors import FileFormatError
from engine.disbursement.bank_card import BinTable
from engine.disbursement.registry import CardStatus, Category, ImportResult, check_cardholder_rows
from engine.synthetic import Population, write_cardholders_csv

TODAY = datetime.date(2026, 1, 1)


@pytest.fixture(scope="module")
def environ(shared_data):
    return {"ONECARD_REFERENCE_DATA": str(shared_data)}


@pytest.fixture(scope="module")
def bins(environ):
    return BinTable.load(environ)


def check(tmp_path, bins, text, encoding="utf-8"):
    path = tmp_path / "cardholders.csv"
    path.write_bytes(text.encode(encoding))
    return list(check_cardholder_rows(cardholder_lines(path), bins, TODAY))


HEADER = "身份证号码,姓名,社会保障卡号,状态,类别\n"
TABLE = [
    ("510121195803142150,张三,6222026465816998396,正常,老年人", ImportResult.ok),
    ("51340119720505003x,阿依古丽·买买提,6214 8258 3735 4017 807,挂失,老年人；残疾人", ImportResult.ok),
    ("51012119580314215,张三,6222026465816998396,正常,", ImportResult.invalid_id_format),
    ("510121195803142151,张三,6222026465816998396,正常,", ImportResult.invalid_id_checksum),
    ("5.10121E+17,张三,6222026465816998396,正常,", ImportResult.id_in_scientific_notation),
    ("510121195803142150, ,6222026465816998396,正常,", ImportResult.invalid_name),
    ("510121195803142150,张三,6222026465816998397,正常,", ImportResult.invalid_card_number),
    ("510121195803142150,张三,6222026465816993,正常,", ImportResult.invalid_card_number),
    ("510121195803142150,张三,6222026465816998396,冻结,", ImportResult.invalid_status),
    ("510121195803142150,张三,6222026465816998396,正常,老人", ImportResult.invalid_category),
]


@pytest.mark.parametrize(("row", "expected"), TABLE)
def test_import_row_table(tmp_path, bins, row, expected):
    [result] = check(tmp_path, bins, HEADER + row + "\n")
    assert result.result is expected and result.line == 1


def test_ok_rows_are_normalised(tmp_path, bins):
    [_, row] = check(tmp_path, bins, HEADER + TABLE[0][0] + "\n" + TABLE[1][0] + "\n", "gbk")
    assert (row.id_number, row.card_number, row.bank_code, row.status, row.categories) == (
        "51340119720505003X", "6214825837354017807", "CDCB", CardStatus.lost,
        frozenset({Category.senior, Category.disabled}))


def test_duplicates_in_file(tmp_path, bins):
    rows = [TABLE[0][0], "510121195803142150,张三,6214825837354017807,正常,",
            "510112198711023688,李四,6222026465816998396,active,senior"]
    results = check(tmp_path, bins, HEADER + "\n".join(rows) + "\n")
    assert [r.result for r in results] == [ImportResult.ok, ImportResult.duplicate_id_in_file,
                                           ImportResult.duplicate_card_in_file]


def test_english_headers_and_optional_columns(tmp_path, bins):
    [row] = check(tmp_path, bins, "name,id_number,card_number\n张三,510121195803142150,6222026465816998396\n")
    assert (row.result, row.status, row.categories) == (ImportResult.ok, CardStatus.active, frozenset())


def test_missing_required_column(tmp_path, bins):
    with pytest.raises(FileFormatError, match="card_number"):
        check(tmp_path, bins, "身份证号码,姓名,状态\n510121195803142150,张三,正常\n")


def test_synthetic_cardholder_file_imports_cleanly_and_matches_the_registry(tmp_path, bins, environ):
    population = Population(seed=5, environ=environ)
    people = list(population.people(500))
    path = tmp_path / "cardholders.csv"
    write_cardholders_csv(path, people, encoding="gb18030")
    rows = list(check_cardholder_rows(cardholder_lines(path), bins, TODAY))
    assert [r.result for r in rows] == [ImportResult.ok] * 500
    assert [(r.id_number, r.name, r.card_number, r.status, r.categories, r.bank_code) for r in rows] == [
        (p.id_number, p.name, p.card_number, p.status, p.categories, p.bank_code) for p in people]


def test_cardholder_xlsx_with_numeric_cells(tmp_path, bins):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["身份证号码", "姓名", "社会保障卡号", "状态", "类别"])
    book.active.append(["510121195803142150", "张三", "6222026465816998396", "正常", "老年人"])
    book.active.append([510112198711023688, "李四", "6214825837354017807", "正常", None])
    book.active.append(["51340119720505003X", "王五", 6259083065450331, "正常", None])
    book.save(tmp_path / "cardholders.xlsx")
    rows = list(check_cardholder_rows(cardholder_lines(tmp_path / "cardholders.xlsx"), bins, TODAY))
    assert [r.result for r in rows] == [ImportResult.ok, ImportResult.id_in_scientific_notation,
                                        ImportResult.invalid_card_number]
